package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// handshakeListener accepts connections and runs their TLS handshakes as
// they arrive, before the HTTP server that takes them has started. The
// manager starts the gateway only once its caches are synced: 8-12s after
// a restart with 10,000 Devices, a minute with 110,000. Meanwhile the
// fleet reconnects at once, and its handshakes, the costliest part of a
// reconnect, are done during that wait instead of after it; the calls on
// those connections then wait for the caches. Accepting at once also keeps
// the kernel's accept queue from overflowing into dropped connections.
type handshakeListener struct {
	inner   net.Listener
	config  *tls.Config
	timeout time.Duration

	ready chan *tls.Conn
	// ctx ends with Close, interrupting the handshakes under way.
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	// acceptErr ends Accept once the inner listener fails.
	acceptErr chan error
	// handshaking counts the connections whose handshake is under way.
	handshaking atomic.Int64
	// results counts the finished handshakes by result.
	results *prometheus.CounterVec
}

// newHandshakeListener starts accepting on inner and handshaking with
// config, each handshake bounded by timeout and counted in results.
func newHandshakeListener(inner net.Listener, config *tls.Config, timeout time.Duration, results *prometheus.CounterVec) *handshakeListener {
	l := &handshakeListener{inner: inner, config: config, timeout: timeout, results: results,
		ready: make(chan *tls.Conn), done: make(chan struct{}), acceptErr: make(chan error, 1)}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.accept()
	return l
}

func (l *handshakeListener) accept() {
	var backoff time.Duration
	for {
		c, err := l.inner.Accept()
		if errors.Is(err, net.ErrClosed) {
			l.acceptErr <- err
			return
		}
		if err != nil {
			// Out of file descriptors (EMFILE, ENFILE) and the like,
			// which a reconnecting fleet makes likely: wait a little and
			// go on, as net/http does, rather than stop accepting while
			// the gateway looks healthy.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
				continue
			case <-l.done:
				return
			}
		}
		backoff = 0
		go l.handshake(c)
	}
}

// handshake completes one connection's handshake and queues it for
// Accept; one that fails or takes too long is closed, as net/http does.
func (l *handshakeListener) handshake(c net.Conn) {
	tc := tls.Server(c, l.config)
	ctx, cancel := context.WithTimeout(l.ctx, l.timeout)
	defer cancel()
	l.handshaking.Add(1)
	err := tc.HandshakeContext(ctx)
	l.handshaking.Add(-1)
	if err != nil {
		// Not logged: a port scanner or a load balancer's probe would
		// fill the log. The counter tells a fleet's failures apart.
		if result := handshakeFailure(ctx, err); result != "" {
			l.results.WithLabelValues(result).Inc()
		}
		_ = c.Close()
		return
	}
	// A connection handshaken while the caches sync waits for the server,
	// but not for ever: an agent whose connection is closed dials again.
	wait := time.NewTimer(maxAcceptWait)
	defer wait.Stop()
	select {
	case l.ready <- tc:
		if tc.ConnectionState().DidResume {
			l.results.WithLabelValues("resumed").Inc()
		} else {
			l.results.WithLabelValues("ok").Inc()
		}
	case <-l.done:
		_ = c.Close()
	case <-wait.C:
		l.results.WithLabelValues("unserved").Inc()
		_ = c.Close()
	}
}

// handshakeFailure names why a handshake under ctx failed with err, as a
// label; none when Close cut it off. A peer that hung up before its hello
// (a load balancer's health check, a port scan) is told apart from a
// refused one, so that refused certificates stand out.
func handshakeFailure(ctx context.Context, err error) string {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "timeout"
	case ctx.Err() != nil:
		return ""
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		return "closed"
	default:
		return "error"
	}
}

// maxAcceptWait bounds how long a handshaken connection waits for the
// server to take it: longer than a restart's cache sync with 100,000
// Devices (31s), short enough that agents of a gateway that never serves
// dial again rather than hang.
const maxAcceptWait = time.Minute

// Accept returns the next connection whose handshake completed.
func (l *handshakeListener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.acceptErr:
		l.acceptErr <- err
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; connections still handshaking, or handshaken
// and not taken yet, are closed.
func (l *handshakeListener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.cancel()
	})
	return l.inner.Close()
}

func (l *handshakeListener) Addr() net.Addr { return l.inner.Addr() }
