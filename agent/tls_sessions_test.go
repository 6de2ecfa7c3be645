package agent

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemdm/kubemdm/internal/pki"
)

// TestTLSSessionsResumeWithTheirOwnCertificate: the agent's second
// connection resumes the first one's TLS session, and after a renewal it
// presents its new certificate, in a full handshake, rather than resume a
// session that would present the old one.
func TestTLSSessionsResumeWithTheirOwnCertificate(t *testing.T) {
	caPEM, caKey, err := pki.NewCA("devices", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(caPEM, caKey)
	if err != nil {
		t.Fatal(err)
	}
	servingPEM, servingKey, err := ca.SignServing([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := tls.X509KeyPair(servingPEM, servingKey)
	if err != nil {
		t.Fatal(err)
	}
	type call struct {
		device  string
		resumed bool
	}
	var mu sync.Mutex
	var last call
	gateway := httptest.NewUnstartedServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		id, err := pki.IdentityFromCertificate(r.TLS.PeerCertificates[0])
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		last = call{device: id.Name, resumed: r.TLS.DidResume}
		mu.Unlock()
	}))
	gateway.EnableHTTP2 = true
	gateway.TLS = &tls.Config{Certificates: []tls.Certificate{serving}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	gateway.StartTLS()
	defer gateway.Close()

	state, err := LoadState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string) {
		keyPEM, csrPEM, err := state.NewKeyAndCSR()
		if err != nil {
			t.Fatal(err)
		}
		csr, err := pki.ParseCSR(csrPEM)
		if err != nil {
			t.Fatal(err)
		}
		certPEM, _, err := ca.SignDevice(csr, pki.DeviceIdentity{Namespace: "fleet", Name: name, UID: types.UID(name)}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := state.StoreCredentials(keyPEM, certPEM, nil); err != nil {
			t.Fatal(err)
		}
	}
	a := New(Options{Gateway: gateway.Listener.Addr().String(), Trust: Trust{CABundle: caPEM}}, state, nil, logr.Discard())
	connect := func() call {
		t.Helper()
		_, tr, err := a.client(true)
		if err != nil {
			t.Fatal(err)
		}
		// A connection of its own each time, as each session makes.
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + a.opts.Gateway + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		mu.Lock()
		defer mu.Unlock()
		return last
	}
	issue("first")
	for i, want := range []call{{"first", false}, {"first", true}, {"first", true}} {
		if got := connect(); got != want {
			t.Errorf("connection %d with the first certificate: %+v, want %+v", i+1, got, want)
		}
	}
	issue("renewed")
	for i, want := range []call{{"renewed", false}, {"renewed", true}} {
		if got := connect(); got != want {
			t.Errorf("connection %d after the renewal: %+v, want %+v", i+1, got, want)
		}
	}
}
