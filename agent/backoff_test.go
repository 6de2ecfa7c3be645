package agent

import (
	"testing"
	"time"
)

// TestJitteredStaysWithinBackoff: the reconnect wait spreads over the upper
// half of the backoff and never passes it, so MaxBackoff (30s by default,
// as docs/agent-protocol.md says) is the longest an agent stays away.
func TestJitteredStaysWithinBackoff(t *testing.T) {
	for _, backoff := range []time.Duration{0, time.Nanosecond, minBackoff, 30 * time.Second} {
		lo, hi := backoff, time.Duration(0)
		for range 2000 {
			w := jittered(backoff)
			lo, hi = min(lo, w), max(hi, w)
		}
		if lo < backoff/2 || hi > backoff {
			t.Errorf("backoff %s: waits from %s to %s, want within [%s, %s]", backoff, lo, hi, backoff/2, backoff)
		}
		if backoff >= minBackoff && hi-lo < backoff/4 {
			t.Errorf("backoff %s: waits from %s to %s are not spread", backoff, lo, hi)
		}
	}
}
