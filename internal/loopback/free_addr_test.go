package loopback

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeAddrIsOutsideTheEphemeralRange: a port from the ephemeral range can
// be taken by any outgoing connection before the process it is meant for
// binds it.
func TestFreeAddrIsOutsideTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	if low-freePortFloor < 1000 {
		t.Skipf("no room below the ephemeral range (starts at %d)", low)
	}
	seen := map[string]bool{}
	for range 50 {
		addr, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if port < freePortFloor || port >= low {
			t.Fatalf("FreeAddr gave %s, want a port in [%d, %d)", addr, freePortFloor, low)
		}
		if seen[addr] {
			t.Fatalf("FreeAddr gave %s twice", addr)
		}
		seen[addr] = true
		// And it is free: the caller can bind it.
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("FreeAddr gave %s, which cannot be bound: %v", addr, err)
		}
		_ = ln.Close()
	}
}
