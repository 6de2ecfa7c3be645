package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/kubemdm/kubemdm/internal/pki"
)

// TestOversizedBodyIsRefused sends a request larger than the limit: the
// gateway refuses it without reading it all.
func TestOversizedBodyIsRefused(t *testing.T) {
	caCert, caKey, err := pki.NewCA("size", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(caCert, caKey)
	if err != nil {
		t.Fatal(err)
	}
	s := New(nil, nil, ca, nil, logr.Discard(), Options{Serving: &ServingCertificate{}})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	body := `{"token":"` + strings.Repeat("x", maxRequestBytes+10) + `"}`
	resp, err := http.Post(srv.URL+"/kubemdm.agent.v1.AgentService/Enroll", "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode < 400 || resp.StatusCode >= 500 || !strings.Contains(string(out), "resource_exhausted") {
		t.Fatalf("answered %d %s, want a resource_exhausted client error", resp.StatusCode, out)
	}
}
