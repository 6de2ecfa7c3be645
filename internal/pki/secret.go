package pki

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// caValidity is long because re-keying a CA means re-enrolling every device.
const caValidity = 10 * 365 * 24 * time.Hour

// EnsureCA loads the CA kept in a Secret, creating it on first start (see
// EnsureSecret).
func EnsureCA(ctx context.Context, reader client.Reader, writer client.Writer, key types.NamespacedName, commonName string) (*CA, error) {
	secret, err := EnsureSecret(ctx, reader, writer, key, corev1.SecretTypeTLS, func() (map[string][]byte, error) {
		certPEM, keyPEM, err := NewCA(commonName, caValidity)
		if err != nil {
			return nil, err
		}
		return map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM, "ca.crt": certPEM}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("ensuring CA Secret %s: %w", key, err)
	}
	ca, err := LoadCA(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, fmt.Errorf("loading CA Secret %s: %w", key, err)
	}
	return ca, nil
}

// EnsureSecret reads the Secret key, creating it with the data newData
// draws when there is none. Several replicas may start at once: the first
// create wins, and the others read the winner's Secret into an empty
// object, so that nothing they drew themselves stays in it. reader must
// not be a cache, which would not have the Secret yet.
func EnsureSecret(ctx context.Context, reader client.Reader, writer client.Writer, key types.NamespacedName, typ corev1.SecretType, newData func() (map[string][]byte, error)) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	err := reader.Get(ctx, key, secret)
	if !apierrors.IsNotFound(err) {
		return secret, err
	}
	data, err := newData()
	if err != nil {
		return nil, err
	}
	secret = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: key.Namespace, Name: key.Name,
			Labels: map[string]string{mdmv1alpha1.LabelManagedBy: mdmv1alpha1.ManagedByValue},
		},
		Type: typ,
		Data: data,
	}
	err = writer.Create(ctx, secret)
	if apierrors.IsAlreadyExists(err) {
		secret = &corev1.Secret{}
		err = reader.Get(ctx, key, secret)
	}
	return secret, err
}
