package controllers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/enrollment"
	"github.com/kubemdm/kubemdm/internal/pki"
)

// TokenSecretType marks the Secrets that hold enrollment token values.
const TokenSecretType corev1.SecretType = "mdm.kubemdm.io/enrollment-token"

// LabelEnrollmentToken names, on a Secret, the token it belongs to.
const LabelEnrollmentToken = mdmv1alpha1.LabelEnrollmentToken

// missingSecretError means a Secret the user must create does not exist yet.
type missingSecretError struct{ name, key string }

func (e *missingSecretError) Error() string {
	return fmt.Sprintf("Waiting for key %q of Secret %q, the Wi-Fi password in spec.provisioning.wifi.passwordSecretRef", e.key, e.name)
}

// secretConflictError means a Secret of the token's name belongs to someone else.
type secretConflictError struct{ name string }

func (e *secretConflictError) Error() string {
	return fmt.Sprintf("Secret %q exists and is not owned by this EnrollmentToken; delete or rename it", e.name)
}

// tokenSecretName is <token>-token, shortened with a hash when the token's
// own name is too long to take the suffix.
func tokenSecretName(token *mdmv1alpha1.EnrollmentToken) string {
	const suffix = "-token"
	if len(token.Name)+len(suffix) <= 253 {
		return token.Name + suffix
	}
	sum := sha256.Sum256([]byte(token.Name))
	return token.Name[:253-len(suffix)-9] + "-" + hex.EncodeToString(sum[:4]) + suffix
}

func (r *EnrollmentTokenReconciler) wifiPassword(ctx context.Context, token *mdmv1alpha1.EnrollmentToken) (string, error) {
	p := token.Spec.Provisioning
	if p == nil || p.Wifi == nil || p.Wifi.PasswordSecretRef == nil {
		return "", nil
	}
	ref := p.Wifi.PasswordSecretRef
	secret := &corev1.Secret{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: token.Namespace, Name: ref.Name}, secret)
	if apierrors.IsNotFound(err) {
		return "", &missingSecretError{name: ref.Name, key: ref.Key}
	}
	if err != nil {
		return "", fmt.Errorf("reading Wi-Fi password Secret %s: %w", ref.Name, err)
	}
	v, ok := secret.Data[ref.Key]
	if !ok {
		return "", &missingSecretError{name: ref.Name, key: ref.Key}
	}
	return string(v), nil
}

// ensureSecret creates or updates the token's Secret and records its name
// and the value's hash in status. An existing value is kept; a Secret that
// was deleted behind our back gets a new value, since the old one is gone.
func (r *EnrollmentTokenReconciler) ensureSecret(ctx context.Context, token *mdmv1alpha1.EnrollmentToken, wifiPassword string) error {
	name := tokenSecretName(token)
	secret := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: token.Namespace, Name: name}, secret)
	switch {
	case apierrors.IsNotFound(err):
		secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: token.Namespace, Name: name}}
	case err != nil:
		return fmt.Errorf("reading token Secret %s: %w", name, err)
	case !metav1.IsControlledBy(secret, token):
		return &secretConflictError{name: name}
	}

	value := string(secret.Data[mdmv1alpha1.TokenSecretKey])
	if !enrollment.WellFormed(value) {
		if value, err = enrollment.NewToken(); err != nil {
			return err
		}
	}
	var caBundle []byte
	if r.GatewayCABundle != nil {
		caBundle = r.GatewayCABundle()
	}
	payload, err := enrollment.Payload(enrollment.PayloadInput{
		Token:          value,
		EnrollmentHost: r.EnrollmentHost,
		Namespace:      token.Namespace,
		Spec:           token.Spec,
		WifiPassword:   wifiPassword,
		GatewayCAPin:   pinOf(caBundle),
	})
	if err != nil {
		return err
	}
	want := map[string][]byte{
		mdmv1alpha1.TokenSecretKey:       []byte(value),
		mdmv1alpha1.TokenSecretQRJSONKey: payload,
	}
	if len(caBundle) > 0 {
		want[mdmv1alpha1.TokenSecretCAKey] = caBundle
	}
	if old := secret.Data; bytes.Equal(old[mdmv1alpha1.TokenSecretKey], want[mdmv1alpha1.TokenSecretKey]) &&
		bytes.Equal(old[mdmv1alpha1.TokenSecretQRJSONKey], payload) && len(old[mdmv1alpha1.TokenSecretQRPNGKey]) > 0 {
		// The PNG is a pure function of the payload: skip re-encoding it.
		want[mdmv1alpha1.TokenSecretQRPNGKey] = old[mdmv1alpha1.TokenSecretQRPNGKey]
	} else if want[mdmv1alpha1.TokenSecretQRPNGKey], err = enrollment.QRCodePNG(payload); err != nil {
		return err
	}

	if secret.CreationTimestamp.IsZero() {
		secret.Type = TokenSecretType
		secret.Labels = map[string]string{LabelEnrollmentToken: token.Name, mdmv1alpha1.LabelManagedBy: mdmv1alpha1.ManagedByValue}
		secret.Data = want
		if err := controllerutil.SetControllerReference(token, secret, r.Scheme()); err != nil {
			return err
		}
		if err := r.Create(ctx, secret); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return r.explainExisting(ctx, token, name)
			}
			return fmt.Errorf("creating token Secret %s: %w", name, err)
		}
	} else if !secretDataEqual(secret.Data, want) {
		before := secret.DeepCopy()
		secret.Data = want
		if err := r.Patch(ctx, secret, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("updating token Secret %s: %w", name, err)
		}
	}
	token.Status.SecretRef = &mdmv1alpha1.LocalObjectReference{Name: name}
	token.Status.TokenHash = enrollment.Hash(value)
	return nil
}

// explainExisting tells why a Secret the cache did not show exists after all:
// either the cache lags behind our own create, or the Secret is someone
// else's (the cache holds only Secrets with our label).
func (r *EnrollmentTokenReconciler) explainExisting(ctx context.Context, token *mdmv1alpha1.EnrollmentToken, name string) error {
	existing := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: token.Namespace, Name: name}, existing); err != nil {
		return fmt.Errorf("reading token Secret %s: %w", name, err)
	}
	if metav1.IsControlledBy(existing, token) && existing.Labels[mdmv1alpha1.LabelManagedBy] == mdmv1alpha1.ManagedByValue {
		return fmt.Errorf("token Secret %s is not in the cache yet", name)
	}
	return &secretConflictError{name: name}
}

// destroySecret deletes the token's Secret, so that the value is gone
// everywhere, not only unusable. The hash stays in status for audit.
func (r *EnrollmentTokenReconciler) destroySecret(ctx context.Context, token *mdmv1alpha1.EnrollmentToken) (destroyed bool, err error) {
	token.Status.SecretRef = nil
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: token.Namespace, Name: tokenSecretName(token)}}
	if err := r.Get(ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("reading token Secret %s: %w", secret.Name, err)
	}
	if !metav1.IsControlledBy(secret, token) {
		return false, nil
	}
	if err := r.Delete(ctx, secret, client.Preconditions{UID: &secret.UID}); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("deleting token Secret %s: %w", secret.Name, err)
	}
	return true, nil
}

func secretDataEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// pinOf is the SHA-256 pin of a PEM bundle's first certificate, or "".
func pinOf(bundle []byte) string {
	cert, err := pki.ParseCertificatePEM(bundle)
	if err != nil {
		return ""
	}
	return pki.Fingerprint(cert)
}
