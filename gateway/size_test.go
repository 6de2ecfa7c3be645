package gateway

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestOversizedBodyIsRefused sends a request larger than the limit: the
// gateway refuses it without reading it all.
func TestOversizedBodyIsRefused(t *testing.T) {
	srv := newTestServer(t)
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
