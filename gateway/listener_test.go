package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/kubemdm/kubemdm/internal/pki"
)

// TestStartServesTheListenerGiven: a connection made to a listener the
// manager bound before the gateway started (while its caches synced) waits,
// and completes its handshake once the gateway serves; the bind address is
// not used then.
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
	caCert, caKey, err := pki.NewCA("devices", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	deviceCA, err := pki.LoadCA(caCert, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serving.CABundle())
	handshake := make(chan error, 1)
	go func() {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err == nil {
			_ = conn.Close()
		}
		handshake <- err
	}()
	select {
	case err := <-handshake:
		t.Fatalf("a handshake finished before the gateway served: %v", err)
	case <-time.After(300 * time.Millisecond):
	}

	s := New(c, c, deviceCA, nil, logr.Discard(), Options{
		Listener: ln, BindAddress: "bind address unused:0",
		CertificateLifetime: time.Hour, StatusFlushInterval: time.Minute, Serving: serving,
		Replica: "early", LeaseNamespace: "kubemdm-system", HandoverGrace: time.Second,
	})
	started := make(chan error, 1)
	go func() { started <- s.Start(ctx) }()
	select {
	case err := <-handshake:
		if err != nil {
			t.Fatalf("the waiting handshake: %v", err)
		}
	case err := <-started:
		t.Fatalf("the gateway stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting handshake did not finish once the gateway served")
	}
	if got := s.Addr().String(); got != ln.Addr().String() {
		t.Errorf("serving on %s, want the listener's %s", got, ln.Addr())
	}
	cancel()
	if err := <-started; err != nil {
		t.Errorf("stopping: %v", err)
	}
}
