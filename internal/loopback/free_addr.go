// Package loopback hands out loopback addresses for processes a test
// starts later.
package loopback

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// freePortFloor keeps FreeAddr clear of the well-known and registered ports
// most services listen on.
const freePortFloor = 10000

// FreeAddr returns a loopback address nothing listens on, for a process
// started later to bind.
//
// It does not ask the kernel for port 0: that port comes from the ephemeral
// range, where every outgoing connection on the machine also takes its local
// port, so between this call and the later bind any client (the manager's
// own, an apiserver's etcd client, another test's) may take it, and the
// process fails with "address already in use". A port below that range is
// never handed out implicitly; only another explicit choice can collide with
// it, and trying it here rules out one already taken.
//
// A port is handed out once per process, so that two calls made before
// either process binds (a gateway's and a metrics address) never collide.
func FreeAddr() (string, error) {
	if low := ephemeralLow(); low-freePortFloor >= 1000 {
		for range 100 {
			port := freePortFloor + rand.IntN(low-freePortFloor)
			if !handedOut.take(port) {
				continue
			}
			if addr, err := listenOnce(net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
				return addr, nil
			}
		}
	}
	// Too little room below the ephemeral range (or no Linux to ask): the
	// kernel's choice is the best left, with the race above.
	return listenOnce("127.0.0.1:0")
}

// handedOut is every port FreeAddr returned or tried in this process.
var handedOut ports

type ports struct {
	mu    sync.Mutex
	taken map[int]bool
}

// take reports whether port was not handed out before, and marks it.
func (p *ports) take(port int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.taken[port] {
		return false
	}
	if p.taken == nil {
		p.taken = map[int]bool{}
	}
	p.taken[port] = true
	return true
}

func listenOnce(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ephemeralLow is the first port of the kernel's ephemeral range, or 0 when
// it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 0
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil {
		return 0
	}
	return low
}
