package gateway

import (
	"context"
	"crypto/rand"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// TicketSecretKey is the key of the session ticket Secret's data that
// holds the secret.
const TicketSecretKey = "secret"

// EnsureTicketSecret returns the secret the gateway's TLS session tickets
// are derived from, kept in the Secret key, which the first replica to
// start creates with 32 random bytes. Deleting the Secret rotates it: each
// replica reads the new one when it next starts, and meanwhile the fleet
// makes full handshakes with replicas that disagree.
func EnsureTicketSecret(ctx context.Context, reader client.Reader, writer client.Writer, key types.NamespacedName) ([]byte, error) {
	secret := &corev1.Secret{}
	err := reader.Get(ctx, key, secret)
	if apierrors.IsNotFound(err) {
		value := make([]byte, minTicketSecret)
		if _, err := rand.Read(value); err != nil {
			return nil, fmt.Errorf("drawing a session ticket secret: %w", err)
		}
		secret = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name,
				Labels: map[string]string{mdmv1alpha1.LabelManagedBy: mdmv1alpha1.ManagedByValue}},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{TicketSecretKey: value},
		}
		err = writer.Create(ctx, secret)
		if apierrors.IsAlreadyExists(err) {
			// Another replica created it first: read its secret, into an
			// empty object so that nothing of the one drawn here stays.
			secret = &corev1.Secret{}
			err = reader.Get(ctx, key, secret)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ensuring session ticket Secret %s: %w", key, err)
	}
	value := secret.Data[TicketSecretKey]
	if len(value) < minTicketSecret {
		return nil, fmt.Errorf("session ticket Secret %s: data[%q] has %d bytes, fewer than %d; delete the Secret for a new one, or set --gateway-session-ticket-secret to another", key, TicketSecretKey, len(value), minTicketSecret)
	}
	return value, nil
}
