package gateway

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// expectWindow is how long a device enrolled during a storm is expected
// to connect: in a 10,000-device storm on two cores, its connection was
// written 19s after its create for one device in ten, 33s at most.
const expectWindow = 30 * time.Second

// ConnectionExpected reports whether this replica holds a stream of the
// device, has a connection change of it still to write, or enrolled it
// moments ago while other enrollments waited their turn: its connection is
// on its way to the Device, which the Device controller leaves for it.
func (s *Server) ConnectionExpected(key types.NamespacedName) bool {
	return s.presence.holds(key) || s.expected.holds(key, s.now())
}

// expected holds the devices enrolled here while other enrollments waited
// their turn: a storm, when the agent's connection and first report take
// seconds to reach the Device. An enrollment that did not wait is not
// held: an agent that enrolls alone connects within moments or not at all.
type expected struct {
	mu       sync.Mutex
	at       map[types.NamespacedName]time.Time
	prunedAt time.Time
}

func newExpected() *expected {
	return &expected{at: map[types.NamespacedName]time.Time{}}
}

// enrolled records a device enrolled at now while enrollments queued.
func (e *expected) enrolled(key types.NamespacedName, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.at[key] = now
	// At most one storm's worth of entries: those of the last window.
	if now.Sub(e.prunedAt) >= expectWindow {
		for k, t := range e.at {
			if now.Sub(t) >= expectWindow {
				delete(e.at, k)
			}
		}
		e.prunedAt = now
	}
}

// holds reports whether the device enrolled here during a storm within
// the window before now.
func (e *expected) holds(key types.NamespacedName, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.at[key]
	return ok && now.Sub(t) < expectWindow
}

func (e *expected) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.at)
}
