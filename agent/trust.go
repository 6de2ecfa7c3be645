package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/kubemdm/kubemdm/internal/pki"
)

// Trust is how the agent verifies the gateway: a CA bundle, or the SHA-256
// pin of the gateway's CA from the enrollment payload. Verification is never
// skipped; a pin only chooses the root.
type Trust struct {
	CABundle []byte
	Pin      string
}

func (t Trust) tlsConfig(serverAddr string, clientCert *tls.Certificate) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(serverAddr)
	if err != nil {
		host = serverAddr
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host, NextProtos: []string{"h2", "http/1.1"}}
	if clientCert != nil {
		cfg.Certificates = []tls.Certificate{*clientCert}
	}
	switch {
	case len(t.CABundle) > 0:
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(t.CABundle) {
			return nil, errors.New("the gateway CA bundle holds no certificate")
		}
		cfg.RootCAs = pool
	case t.Pin != "":
		pin := strings.ToLower(t.Pin)
		// The standard verification cannot take a pin as its root, so it is
		// replaced by the same verification against the pinned certificate.
		cfg.InsecureSkipVerify = true
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyPinned(raw, pin, host)
		}
	default:
		return nil, errors.New("no way to verify the gateway: give a CA bundle or a CA pin")
	}
	return cfg, nil
}

func verifyPinned(raw [][]byte, pin, host string) error {
	if len(raw) == 0 {
		return errors.New("the gateway sent no certificate")
	}
	certs := make([]*x509.Certificate, 0, len(raw))
	for _, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return fmt.Errorf("gateway certificate: %w", err)
		}
		certs = append(certs, c)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	found := false
	for _, c := range certs[1:] {
		if pki.Fingerprint(c) == pin {
			roots.AddCert(c)
			found = true
		} else {
			inter.AddCert(c)
		}
	}
	if !found {
		return errors.New("the gateway's certificate chain does not contain the pinned CA")
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}
