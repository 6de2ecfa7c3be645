package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// countGate limits how often a count derived from many Devices is
// recomputed and written for one object. It is only a rate limit: the count
// itself is always recomputed from the Devices, so a restart can neither
// lose nor double it, and the first look after a quiet spell is immediate.
type countGate struct {
	mu   sync.Mutex
	last map[types.NamespacedName]time.Time
}

// wait is how long to hold off before counting key again, at most once
// every interval; zero means now.
func (g *countGate) wait(key types.NamespacedName, now time.Time, every time.Duration) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t, ok := g.last[key]; ok {
		return max(every-now.Sub(t), 0)
	}
	return 0
}

func (g *countGate) mark(key types.NamespacedName, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.last == nil {
		g.last = map[types.NamespacedName]time.Time{}
	}
	g.last[key] = now
}

func (g *countGate) forget(key types.NamespacedName) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.last, key)
}
