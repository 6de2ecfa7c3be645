package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net/url"
	"testing"
	"time"
)

func csrFor(t testing.TB, key any) []byte {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "someone-else"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestSignDeviceNamesTheDeviceNotTheCSR(t *testing.T) {
	certPEM, keyPEM, err := NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := ParseCSR(csrFor(t, key))
	if err != nil {
		t.Fatal(err)
	}
	id := DeviceIdentity{Namespace: "tenant-a", Name: "phone-1", UID: "1234"}
	_, cert, err := ca.SignDevice(csr, id, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := IdentityFromCertificate(cert)
	if err != nil || got != id {
		t.Fatalf("identity = %v, %v; want %v", got, err, id)
	}
	if cert.Subject.CommonName != "phone-1" {
		t.Errorf("subject CN %q comes from the CSR", cert.Subject.CommonName)
	}
	if cert.NotAfter.After(ca.Cert.NotAfter) {
		t.Errorf("certificate outlives its CA")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("certificate does not verify as a client certificate: %v", err)
	}
}

func TestParseCSRRefusals(t *testing.T) {
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	for name, in := range map[string][]byte{
		"empty":       nil,
		"not PEM":     []byte("hello"),
		"wrong block": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}}),
		"garbage DER": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1, 2, 3}}),
		"RSA 1024":    csrFor(t, weak),
		"ECDSA P-224": csrFor(t, p224),
	} {
		if _, err := ParseCSR(in); !errors.Is(err, ErrBadCSR) {
			t.Errorf("%s: err = %v, want ErrBadCSR", name, err)
		}
	}
}

func TestIdentityFromCertificateRefusals(t *testing.T) {
	for _, u := range []string{
		"spiffe://mdm.kubemdm.io/ns/a/devices/b",
		"spiffe://mdm.kubemdm.io/ns//devices/b/c",
		"spiffe://other.example/ns/a/devices/b/c",
		"https://mdm.kubemdm.io/ns/a/devices/b/c",
	} {
		parsed, _ := url.Parse(u)
		if _, err := IdentityFromCertificate(&x509.Certificate{URIs: []*url.URL{parsed}}); err == nil {
			t.Errorf("%s: accepted", u)
		}
	}
}

func FuzzParseCSR(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add(csrFor(f, key))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		csr, err := ParseCSR(in)
		if err == nil && csr.CheckSignature() != nil {
			t.Fatal("accepted a CSR whose signature does not verify")
		}
	})
}
