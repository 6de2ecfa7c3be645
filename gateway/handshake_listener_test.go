package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"syscall"
	"testing"
	"time"
)

// selfSigned returns a server configuration and a client configuration
// that trusts it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
}

func listen(t *testing.T) net.Listener {
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
	l := newHandshakeListener(listen(t), serverConf, 5*time.Second)
	defer func() { _ = l.Close() }()
	const n = 20
	dialed := make(chan error, n)
	hold := make(chan struct{})
	defer close(hold)
	for range n {
		go func() {
			c, err := tls.Dial("tcp", l.Addr().String(), clientConf)
			dialed <- err
			if err == nil {
				<-hold
				_ = c.Close()
			}
		}()
	}
	// Each client's Dial returns once its handshake is done; nothing has
	// called Accept yet.
	for range n {
		select {
		case err := <-dialed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("handshakes did not complete before Accept")
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

// TestHandshakeListenerDropsFailedAndStalledHandshakes: a client that is
// not TLS, and one that sends nothing, are closed without holding up a
// good one.
func TestHandshakeListenerDropsFailedAndStalledHandshakes(t *testing.T) {
	serverConf, clientConf := selfSigned(t)
	l := newHandshakeListener(listen(t), serverConf, 2*time.Second)
	defer func() { _ = l.Close() }()
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
	good := make(chan error, 1)
	go func() {
		c, err := tls.Dial("tcp", l.Addr().String(), clientConf)
		if err == nil {
			_ = c.Close()
		}
		good <- err
	}()
	select {
	case err := <-good:
		if err != nil {
			t.Fatalf("a good client behind a bad and a stalled one: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a good client behind a bad and a stalled one did not complete its handshake")
	}
	if _, err := l.Accept(); err != nil {
		t.Fatal(err)
	}
	// The stalled one is closed once its handshake times out.
	expectClosed(t, stalled, "the stalled connection")
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- c
		}
	}()
	select {
	case c := <-accepted:
		t.Fatalf("Accept handed over a connection whose handshake failed: %v", c.RemoteAddr())
	case <-time.After(500 * time.Millisecond):
	}
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
	l := newHandshakeListener(listen(t), serverConf, time.Minute)
	stalled, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stalled.Close() }()
	accepted := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		accepted <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
	expectClosed(t, stalled, "a handshake under way at Close")
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
	l := newHandshakeListener(&failingListener{Listener: listen(t)}, serverConf, 5*time.Second)
	defer func() { _ = l.Close() }()
	dialed := make(chan error, 1)
	go func() {
		c, err := tls.Dial("tcp", l.Addr().String(), clientConf)
		if err == nil {
			defer func() { _ = c.Close() }()
		}
		dialed <- err
	}()
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			_ = c.Close()
		}
		accepted <- err
	}()
	select {
	case err := <-accepted:
		if err != nil {
			t.Fatalf("Accept after an EMFILE: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing accepted after an EMFILE")
	}
	if err := <-dialed; err != nil {
		t.Fatal(err)
	}
}
