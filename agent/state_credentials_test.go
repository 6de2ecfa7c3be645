package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// TestCertificateFollowsStoredCredentials: the parsed certificate is kept
// between reconnects, and a renewal or a release replaces or drops it at
// once; the agent never presents a certificate it no longer holds.
func TestCertificateFollowsStoredCredentials(t *testing.T) {
	issue := func(cn string) (keyPEM, certPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	s, err := LoadState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	subject := func() string {
		t.Helper()
		c, err := s.Certificate()
		if err != nil {
			return "error: " + err.Error()
		}
		return c.Leaf.Subject.CommonName
	}
	k, c := issue("first")
	if err := s.StoreCredentials(k, c, nil); err != nil {
		t.Fatal(err)
	}
	if got := subject(); got != "first" {
		t.Fatalf("certificate %q, want first", got)
	}
	k, c = issue("renewed")
	if err := s.StoreCredentials(k, c, nil); err != nil {
		t.Fatal(err)
	}
	if got := subject(); got != "renewed" {
		t.Errorf("after a renewal the agent presents %q", got)
	}
	// Another process (an operator, a second agent run) replaces the files.
	k, c = issue("replaced")
	other, err := LoadState(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.StoreCredentials(k, c, nil); err != nil {
		t.Fatal(err)
	}
	if got := subject(); got != "replaced" {
		t.Errorf("after another process replaced them the agent presents %q", got)
	}
	if err := s.Forget(); err != nil {
		t.Fatal(err)
	}
	if got := subject(); got[:6] != "error:" {
		t.Errorf("after a release the agent still presents %q", got)
	}
}
