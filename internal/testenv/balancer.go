package testenv

import (
	"io"
	"net"
	"sync"
)

// Balancer stands for the load balancer in front of gateway replicas: it
// hands each new connection to the next backend that answers, round robin,
// and can cut the open ones, as a rollout, a moved route or a dropped NAT
// entry does.
type Balancer struct {
	ln       net.Listener
	mu       sync.Mutex
	backends []string
	next     int
	open     map[net.Conn]struct{}
}

// NewBalancer listens on a free loopback port.
func NewBalancer(backends ...string) (*Balancer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Balancer{ln: ln, backends: backends, open: map[net.Conn]struct{}{}}
	go b.serve()
	return b, nil
}

// Addr is where agents connect.
func (b *Balancer) Addr() string { return b.ln.Addr().String() }

// Route sends new connections to backends from now on.
func (b *Balancer) Route(backends ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = backends
}

// Cut closes every open connection.
func (b *Balancer) Cut() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.open {
		_ = c.Close()
	}
	clear(b.open)
}

// Close stops accepting and cuts what is open.
func (b *Balancer) Close() {
	_ = b.ln.Close()
	b.Cut()
}

func (b *Balancer) dial() net.Conn {
	b.mu.Lock()
	backends, start := b.backends, b.next
	b.next++
	b.mu.Unlock()
	for i := range backends {
		if out, err := net.Dial("tcp", backends[(start+i)%len(backends)]); err == nil {
			return out
		}
	}
	return nil
}

func (b *Balancer) serve() {
	for {
		in, err := b.ln.Accept()
		if err != nil {
			return
		}
		go b.forward(in)
	}
}

func (b *Balancer) forward(in net.Conn) {
	// Registered before the dial, so that a Cut meanwhile cuts it too.
	b.mu.Lock()
	b.open[in] = struct{}{}
	b.mu.Unlock()
	out := b.dial()
	if out == nil {
		_ = in.Close()
		b.mu.Lock()
		delete(b.open, in)
		b.mu.Unlock()
		return
	}
	b.mu.Lock()
	_, stillOpen := b.open[in]
	b.open[out] = struct{}{}
	b.mu.Unlock()
	if !stillOpen {
		_ = out.Close()
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
	b.mu.Lock()
	delete(b.open, in)
	delete(b.open, out)
	b.mu.Unlock()
}
