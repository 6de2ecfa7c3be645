package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// TestStartServesTheListenerGiven: a connection made to a listener the
// manager bound before the gateway started (while its caches synced)
// completes its TLS handshake as soon as the gateway exists, before it
// serves, and its requests are answered once it serves; the bind address
// is not used then.
func TestStartServesTheListenerGiven(t *testing.T) {
	c := fakeCache().Build()
	if err := clientgoscheme.AddToScheme(c.Scheme()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serving, err := SelfSignedServing(ctx, c, c, types.NamespacedName{Namespace: "kubemdm-system", Name: "gateway-ca"}, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	deviceCA := newTestCA(t, "devices")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serving.CABundle())
	type dialed struct {
		conn *tls.Conn
		err  error
	}
	handshake := make(chan dialed, 1)
	go func() {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
		handshake <- dialed{conn, err}
	}()
	select {
	case d := <-handshake:
		t.Fatalf("a handshake finished with no gateway: %v", d.err)
	case <-time.After(300 * time.Millisecond):
	}

	s := New(c, c, deviceCA, nil, logr.Discard(), Options{
		Listener: ln, BindAddress: "bind address unused:0",
		CertificateLifetime: time.Hour, StatusFlushInterval: time.Minute, Serving: serving,
		Replica: "early", LeaseNamespace: "kubemdm-system", HandoverGrace: time.Second,
	})
	var conn *tls.Conn
	select {
	case d := <-handshake:
		if d.err != nil {
			t.Fatalf("the waiting handshake: %v", d.err)
		}
		conn = d.conn
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting handshake did not finish before the gateway served")
	}
	defer func() { _ = conn.Close() }()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	// A request on that connection is answered once the gateway serves.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil }}}
	answered := make(chan error, 1)
	go func() {
		resp, err := client.Get("https://127.0.0.1/")
		if err == nil {
			_ = resp.Body.Close()
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("a request was answered before the gateway served: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	started := make(chan error, 1)
	go func() { started <- s.Start(ctx) }()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("the request on the early connection: %v", err)
		}
	case err := <-started:
		t.Fatalf("the gateway stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the request on the early connection was not answered once the gateway served")
	}
	if got := s.Addr().String(); got != ln.Addr().String() {
		t.Errorf("serving on %s, want the listener's %s", got, ln.Addr())
	}
	cancel()
	if err := <-started; err != nil {
		t.Errorf("stopping: %v", err)
	}
}
