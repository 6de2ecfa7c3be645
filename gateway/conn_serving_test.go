package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// serveConns serves h on a handshake listener, the way Start does, and
// returns its address and a client configuration that trusts it.
func serveConns(t *testing.T, ctx context.Context, h http.Handler) (*connServer, string, *tls.Config) {
	t.Helper()
	serverConf, clientConf := selfSigned(t)
	serverConf.NextProtos = []string{"h2", "http/1.1"}
	ln := newHandshakeListener(listen(t), serverConf, 5*time.Second, newHandshakeCounter())
	t.Cleanup(func() { _ = ln.Close() })
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	cs, err := newConnServer(srv, ln.Addr(), logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = cs.serve(ln) }()
	return cs, "https://" + ln.Addr().String() + "/", clientConf
}

// TestConnServerServesBothProtocols: an agent's HTTP/2 connection, served
// on a goroutine of its own, and an HTTP/1.1 client (curl without --http2,
// a load balancer's probe), served by the http.Server, are both answered,
// each in its own protocol, and the handlers see the server's base context
// and the client's TLS state.
func TestConnServerServesBothProtocols(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(t.Context(), key{}, "base")
	var cs *connServer
	cs, url, clientConf := serveConns(t, ctx, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Value(key{}) != "base" || r.TLS == nil || !r.TLS.HandshakeComplete {
			http.Error(w, "no base context or TLS state", http.StatusInternalServerError)
			return
		}
		cs.mu.Lock()
		own := len(cs.conns)
		cs.mu.Unlock()
		_, _ = fmt.Fprintf(w, "%s %d", r.Proto, own)
	}))
	for _, tc := range []struct {
		name      string
		transport *http.Transport
		want      string
	}{
		{"HTTP/2", &http.Transport{TLSClientConfig: clientConf.Clone(), ForceAttemptHTTP2: true}, "HTTP/2.0 1"},
		// A non-nil, empty TLSNextProto keeps the client to HTTP/1.1.
		{"HTTP/1.1", &http.Transport{TLSClientConfig: clientConf.Clone(), TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}, "HTTP/1.1 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.transport.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tc.transport, Timeout: 10 * time.Second}).Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != tc.want {
				t.Fatalf("answered %d %q, want 200 %q", resp.StatusCode, body, tc.want)
			}
		})
	}
}

// TestConnServerShutdown: an idle HTTP/2 connection is told to go away
// and closes at once; one whose handler never returns is closed when the
// shutdown's time is up, and the shutdown says so rather than hang.
func TestConnServerShutdown(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 1)
	cs, url, clientConf := serveConns(t, t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stuck" {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			started <- struct{}{}
			<-release // ignores its context, as a buggy handler might
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	client := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientConf.Clone(), ForceAttemptHTTP2: true}}
	}
	idle := client()
	resp, err := idle.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()

	stuck := client()
	resp, err = stuck.Get(url + "stuck")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	<-started
	body := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		body <- err
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	begun := time.Now()
	err = within(t, shutdownAsync(ctx, cs), 10*time.Second, "shutdown with a stuck handler")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("shutdown with a stuck handler: %v, want the deadline", err)
	}
	if took := time.Since(begun); took > 5*time.Second {
		t.Errorf("shutdown took %s past its 500ms", took)
	}
	if err := within(t, body, 5*time.Second, "the stuck stream's body"); err == nil {
		t.Error("the stuck stream ended cleanly; its connection should have been closed")
	}
	if _, err := stuck.Get(url); err == nil {
		t.Error("a new request was answered after the shutdown")
	}

	// A server with only idle connections shuts down before its deadline.
	cs, url, clientConf = serveConns(t, t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	idle = client()
	if resp, err = idle.Get(url); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	begun = time.Now()
	if err := within(t, shutdownAsync(ctx, cs), 10*time.Second, "shutdown with an idle connection"); err != nil {
		t.Errorf("shutdown with an idle connection: %v", err)
	}
	if took := time.Since(begun); took > 5*time.Second {
		t.Errorf("shutdown with an idle connection took %s", took)
	}
}

func shutdownAsync(ctx context.Context, cs *connServer) <-chan error {
	done := make(chan error, 1)
	go func() { done <- cs.shutdown(ctx) }()
	return done
}

// TestConnServerStreamsEndWithTheBaseContext: an HTTP/2 stream's context
// ends when the server's base context does, which is how the gateway ends
// its Subscribe streams at shutdown.
func TestConnServerStreamsEndWithTheBaseContext(t *testing.T) {
	base, cancel := context.WithCancel(t.Context())
	defer cancel()
	ended := make(chan error, 1)
	_, url, clientConf := serveConns(t, base, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			ended <- nil
		case <-time.After(10 * time.Second):
			ended <- errors.New("the stream outlived the base context")
		}
	}))
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: clientConf, ForceAttemptHTTP2: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	cancel()
	if err := within(t, ended, 15*time.Second, "the stream's context"); err != nil {
		t.Error(err)
	}
}
