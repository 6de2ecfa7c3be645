package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/kubemdm/kubemdm/internal/pki"
)

// testDevice is the identity the tests' device certificates carry.
var testDevice = pki.DeviceIdentity{Namespace: "fleet", Name: "phone", UID: "0c2f4a3e-0000-4000-8000-000000000001"}

// newTestCA returns a fresh CA named name, valid for an hour.
func newTestCA(tb testing.TB, name string) *pki.CA {
	tb.Helper()
	caCert, caKey, err := pki.NewCA(name, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := pki.LoadCA(caCert, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	return ca
}

// deviceCertificate is a certificate deviceCA issued to the device id, for
// an hour.
func deviceCertificate(tb testing.TB, deviceCA *pki.CA, id pki.DeviceIdentity) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		tb.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		tb.Fatal(err)
	}
	_, leaf, err := deviceCA.SignDevice(csr, id, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
}
