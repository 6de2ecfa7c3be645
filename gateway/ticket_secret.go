package gateway

import (
	"context"
	"crypto/rand"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/internal/pki"
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
	secret, err := pki.EnsureSecret(ctx, reader, writer, key, corev1.SecretTypeOpaque, func() (map[string][]byte, error) {
		value := make([]byte, minTicketSecret)
		if _, err := rand.Read(value); err != nil {
			return nil, fmt.Errorf("drawing a session ticket secret: %w", err)
		}
		return map[string][]byte{TicketSecretKey: value}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("ensuring session ticket Secret %s: %w", key, err)
	}
	value := secret.Data[TicketSecretKey]
	if len(value) < minTicketSecret {
		return nil, fmt.Errorf("session ticket Secret %s: data[%q] has %d bytes, fewer than %d; delete the Secret for a new one, or set --gateway-session-ticket-secret to another", key, TicketSecretKey, len(value), minTicketSecret)
	}
	return value, nil
}
