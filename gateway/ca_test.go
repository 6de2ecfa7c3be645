package gateway

import (
	"testing"
	"time"

	"github.com/kubemdm/kubemdm/internal/pki"
)

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
