package gateway

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// selfSigned returns a server configuration with a certificate for
// 127.0.0.1 and a client configuration that trusts its CA.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	ca := newTestCA(t, "gateway")
	certPEM, keyPEM, err := ca.SignServing([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}},
		&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
}

// dialAsync dials addr over TLS in the background and sends the outcome
// of the handshake; a connection made is closed once hold is closed.
func dialAsync(addr string, conf *tls.Config, hold <-chan struct{}) <-chan error {
	dialed := make(chan error, 1)
	go func() {
		c, err := tls.Dial("tcp", addr, conf)
		dialed <- err
		if err == nil {
			<-hold
			_ = c.Close()
		}
	}()
	return dialed
}

// acceptAsync calls Accept in the background, closes what it hands over,
// and sends its error.
func acceptAsync(l net.Listener) <-chan error {
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			_ = c.Close()
		}
		accepted <- err
	}()
	return accepted
}

// within waits up to d for ch, failing with what when it does not answer.
func within(t *testing.T, ch <-chan error, d time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		t.Fatalf("%s: no answer within %s", what, d)
		return nil
	}
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestHandshakeListenerHandshakesBeforeAccept: connections complete their
// handshakes with nobody calling Accept yet, and Accept then hands them
// over handshaken.
func TestHandshakeListenerHandshakesBeforeAccept(t *testing.T) {
	serverConf, clientConf := selfSigned(t)
	l := newHandshakeListener(listen(t), serverConf, 5*time.Second, newHandshakeCounter())
	defer func() { _ = l.Close() }()
	const n = 20
	hold := make(chan struct{})
	defer close(hold)
	dialed := make([]<-chan error, n)
	for i := range n {
		dialed[i] = dialAsync(l.Addr().String(), clientConf, hold)
	}
	// Each client's Dial returns once its handshake is done; nothing has
	// called Accept yet.
	for _, d := range dialed {
		if err := within(t, d, 5*time.Second, "a handshake before Accept"); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		tc, ok := c.(*tls.Conn)
		if !ok || !tc.ConnectionState().HandshakeComplete {
			t.Fatalf("Accept handed over %T without a completed handshake", c)
		}
	}
}

// expectCounted fails unless the handshakes counted, by result, are
// want. Each test's listener counts apart from the process-wide counter,
// which a gateway or agent left over from another test may still move.
func expectCounted(t *testing.T, counted *prometheus.CounterVec, want map[string]float64) {
	t.Helper()
	for _, r := range handshakeResults {
		if got := testutil.ToFloat64(counted.WithLabelValues(r)); got != want[r] {
			t.Errorf("handshakes counted %s: %v, want %v", r, got, want[r])
		}
	}
}

// TestHandshakeListenerDropsFailedAndStalledHandshakes: a client that is
// not TLS, one that hangs up and one that sends nothing are closed without
// holding up a good one, and counted apart.
func TestHandshakeListenerDropsFailedAndStalledHandshakes(t *testing.T) {
	serverConf, clientConf := selfSigned(t)
	counted := newHandshakeCounter()
	l := newHandshakeListener(listen(t), serverConf, 2*time.Second, counted)
	defer func() { _ = l.Close() }()
	hungUp, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = hungUp.Close()
	garbage, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = garbage.Close() }()
	if _, err := garbage.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	stalled, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stalled.Close() }()
	hold := make(chan struct{})
	defer close(hold)
	good := dialAsync(l.Addr().String(), clientConf, hold)
	if err := within(t, good, 5*time.Second, "a good client behind a bad and a stalled one"); err != nil {
		t.Fatalf("a good client behind a bad and a stalled one: %v", err)
	}
	if _, err := l.Accept(); err != nil {
		t.Fatal(err)
	}
	// The stalled one is closed once its handshake times out.
	expectClosed(t, stalled, "the stalled connection")
	select {
	case err := <-acceptAsync(l):
		t.Fatalf("Accept handed over a connection whose handshake failed or returned %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	expectCounted(t, counted, map[string]float64{"ok": 1, "closed": 1, "error": 1, "timeout": 1})
}

// expectClosed fails unless the server closes c within 5s.
func expectClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); err == nil || (ok && ne.Timeout()) {
		t.Fatalf("%s was left open: %v", what, err)
	}
}

// TestHandshakeListenerClose: Close ends Accept and the handshakes under
// way.
func TestHandshakeListenerClose(t *testing.T) {
	serverConf, _ := selfSigned(t)
	counted := newHandshakeCounter()
	l := newHandshakeListener(listen(t), serverConf, time.Minute, counted)
	stalled, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stalled.Close() }()
	accepted := acceptAsync(l)
	// Close once the stalled connection's handshake is under way, so
	// that it is Close, not the listening socket going, that ends it.
	for deadline := time.Now().Add(5 * time.Second); l.handshaking.Load() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("handshakes under way: %d, want 1", l.handshaking.Load())
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := within(t, accepted, 5*time.Second, "Accept after Close"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	expectClosed(t, stalled, "a handshake under way at Close")
	// Cut off by Close, it failed for no reason of its own.
	expectCounted(t, counted, nil)
}

// failingListener fails its first Accept as a process out of file
// descriptors does, then hands over real connections.
type failingListener struct {
	net.Listener
	failed bool
}

func (f *failingListener) Accept() (net.Conn, error) {
	if !f.failed {
		f.failed = true
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return f.Listener.Accept()
}

// TestHandshakeListenerKeepsAcceptingAfterAnError: running out of file
// descriptors once does not stop the gateway accepting for good.
func TestHandshakeListenerKeepsAcceptingAfterAnError(t *testing.T) {
	serverConf, clientConf := selfSigned(t)
	l := newHandshakeListener(&failingListener{Listener: listen(t)}, serverConf, 5*time.Second, newHandshakeCounter())
	defer func() { _ = l.Close() }()
	hold := make(chan struct{})
	defer close(hold)
	dialed := dialAsync(l.Addr().String(), clientConf, hold)
	if err := within(t, acceptAsync(l), 5*time.Second, "Accept after an EMFILE"); err != nil {
		t.Fatalf("Accept after an EMFILE: %v", err)
	}
	if err := within(t, dialed, 5*time.Second, "the handshake after an EMFILE"); err != nil {
		t.Fatal(err)
	}
}
