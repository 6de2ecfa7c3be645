package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/internal/pki"
)

// servingReload is how often a serving certificate from a Secret is re-read,
// so that cert-manager rotations take effect without a restart.
const servingReload = time.Minute

// ServingCertificate is the gateway's TLS certificate and the CA bundle that
// devices verify it with.
type ServingCertificate struct {
	mu       sync.RWMutex
	cert     *tls.Certificate
	caBundle []byte
}

// SelfSignedServing issues a serving certificate for hosts from the gateway
// CA kept in the Secret caKey (created on first start), so that every replica
// presents a certificate devices can pin through that CA.
func SelfSignedServing(ctx context.Context, reader client.Reader, writer client.Writer, caKey types.NamespacedName, hosts []string) (*ServingCertificate, error) {
	ca, err := pki.EnsureCA(ctx, reader, writer, caKey, "kubemdm gateway CA")
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.SignServing(hosts, 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	s := &ServingCertificate{}
	return s, s.set(append(certPEM, ca.CertPEM...), keyPEM, ca.CertPEM)
}

// ServingFromSecret serves the certificate in a kubernetes.io/tls Secret, as
// cert-manager writes it, and re-reads it every minute until ctx ends.
func ServingFromSecret(ctx context.Context, reader client.Reader, key types.NamespacedName) (*ServingCertificate, error) {
	s := &ServingCertificate{}
	load := func() error {
		secret := &corev1.Secret{}
		if err := reader.Get(ctx, key, secret); err != nil {
			return fmt.Errorf("reading gateway TLS Secret %s: %w", key, err)
		}
		ca := secret.Data["ca.crt"]
		if len(ca) == 0 {
			return fmt.Errorf("gateway TLS Secret %s has no ca.crt, which devices need to trust the gateway", key)
		}
		return s.set(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey], ca)
	}
	if err := load(); err != nil {
		return nil, err
	}
	go func() {
		t := time.NewTicker(servingReload)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = load() // keep serving the last good certificate
			}
		}
	}()
	return s, nil
}

func (s *ServingCertificate) set(certPEM, keyPEM, caPEM []byte) error {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("gateway serving certificate: %w", err)
	}
	if _, err := pki.ParseCertificatePEM(caPEM); err != nil {
		return fmt.Errorf("gateway CA bundle: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cert, s.caBundle = &cert, caPEM
	return nil
}

// GetCertificate serves the current certificate.
func (s *ServingCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cert == nil {
		return nil, errors.New("no serving certificate")
	}
	return s.cert, nil
}

// CABundle is the PEM bundle devices verify the gateway with.
func (s *ServingCertificate) CABundle() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.caBundle
}

// Pin is the SHA-256 of the bundle's first certificate, the compact form of
// the trust anchor that fits in a QR code.
func (s *ServingCertificate) Pin() string {
	cert, err := pki.ParseCertificatePEM(s.CABundle())
	if err != nil {
		return ""
	}
	return pki.Fingerprint(cert)
}
