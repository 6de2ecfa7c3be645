package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/go-logr/logr"
	"golang.org/x/net/http2"
)

// connServer serves the connections a handshakeListener hands over. Every
// agent speaks HTTP/2 and holds its connection for days: such connections
// go to the HTTP/2 server on a goroutine of their own rather than through
// http.Server.Serve. Serve's per-connection goroutine keeps net/http's
// connection frames (1.2 KiB) under the HTTP/2 loop for the connection's
// whole life, and its ALPN wrapper (0.4 KiB) under every stream's handler.
// Go halves a parked goroutine's stack only while it uses less than a
// quarter of it, and those frames kept the stacks from halving: at 1,000
// streams the manager's stacks took 33 KiB per connection through Serve
// and take 21 KiB now (docs/scale.md). Anything else (HTTP/1.1, a client
// that offered no ALPN) goes to the http.Server.
//
// This relies on x/net's own HTTP/2 server, which x/net builds for Go
// before 1.27 (from 1.27 it wraps net/http's, per connection, without the
// graceful shutdown this needs: TestConnServerShutdown fails then), and
// HTTP/2 fixes arrive by updating golang.org/x/net, not Go (ADR 17).
type connServer struct {
	h1   *http.Server
	h2   *http2.Server
	log  logr.Logger
	opts *http2.ServeConnOpts
	rest *connQueue

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	stopping bool
	served   sync.WaitGroup
}

// newConnServer serves srv's handler, on srv's base context, to the
// connections of a listener bound to addr. Shutdown of srv sends the
// HTTP/2 connections a GOAWAY as well.
func newConnServer(srv *http.Server, addr net.Addr, log logr.Logger) (*connServer, error) {
	h2 := &http2.Server{}
	if err := http2.ConfigureServer(srv, h2); err != nil {
		return nil, fmt.Errorf("configuring HTTP/2: %w", err)
	}
	rest := newConnQueue(addr)
	ctx := context.Background()
	if srv.BaseContext != nil {
		ctx = srv.BaseContext(rest)
	}
	return &connServer{
		h1:    srv,
		h2:    h2,
		log:   log,
		opts:  &http2.ServeConnOpts{Context: ctx, BaseConfig: srv, Handler: srv.Handler},
		rest:  rest,
		conns: map[net.Conn]struct{}{},
	}, nil
}

// serve takes ln's connections until ln fails or is closed.
func (cs *connServer) serve(ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- cs.h1.Serve(cs.rest) }()
	for {
		c, err := ln.Accept()
		if err != nil {
			_ = cs.rest.Close()
			return err
		}
		if tc, ok := c.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == http2.NextProtoTLS {
			cs.serveHTTP2(c)
			continue
		}
		if !cs.rest.put(c) {
			return <-errc
		}
	}
}

func (cs *connServer) serveHTTP2(c net.Conn) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.stopping {
		_ = c.Close()
		return
	}
	cs.conns[c] = struct{}{}
	cs.served.Go(func() {
		defer func() {
			// net/http's connection loop recovered a panic of the HTTP/2
			// server and closed only that connection; so does this one,
			// rather than let a peer's connection end the manager.
			if p := recover(); p != nil {
				cs.log.Error(fmt.Errorf("panic: %v", p), "Recovered from a panic serving an HTTP/2 connection", "remote", c.RemoteAddr().String())
			}
			_ = c.Close()
			cs.mu.Lock()
			delete(cs.conns, c)
			cs.mu.Unlock()
		}()
		cs.h2.ServeConn(c, cs.opts)
	})
}

// shutdown stops taking connections, sends the HTTP/2 ones a GOAWAY and
// waits until ctx ends for all to close; those left are closed then.
func (cs *connServer) shutdown(ctx context.Context) error {
	cs.mu.Lock()
	cs.stopping = true
	cs.mu.Unlock()
	err := cs.h1.Shutdown(ctx)
	if err != nil {
		_ = cs.h1.Close()
	}
	done := make(chan struct{})
	go func() {
		cs.served.Wait()
		close(done)
	}()
	select {
	case <-done:
		return err
	case <-ctx.Done():
	}
	cs.mu.Lock()
	for c := range cs.conns {
		_ = c.Close()
	}
	cs.mu.Unlock()
	<-done
	return errors.Join(err, ctx.Err())
}

// connQueue is a net.Listener of the connections put into it, for
// http.Server.Serve.
type connQueue struct {
	addr      net.Addr
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// put hands c to Accept; once the queue is closed, c is closed and put
// reports false.
func (q *connQueue) put(c net.Conn) bool {
	select {
	case q.conns <- c:
		return true
	case <-q.done:
		_ = c.Close()
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.closeOnce.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }
