package gateway

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// subscriber is one open Subscribe stream. It buffers nothing: a change
// only wakes the stream, which then reads what is open from the cache and
// sends it as fast as the agent reads (HTTP/2 flow control). So any backlog
// drains, in order, whatever its size, and a slow agent costs no memory.
type subscriber struct {
	wake chan struct{}
	// closed ends the stream, with the reason in err.
	closed chan struct{}
	once   sync.Once
	err    error

	mu sync.Mutex
	// config is the newest configuration not yet sent, if any.
	config *agentv1.DesiredConfig
	// configSent is the newest configuration generation sent or held by the
	// agent.
	configSent int64
	// sent holds the ids of the open commands already sent on this stream,
	// so that the updates of an action that this stream already carried do
	// not wake it; a command that is no longer open leaves it.
	sent map[string]bool
}

func (s *subscriber) wasSent(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[id]
}

func (s *subscriber) markSent(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent[id] = true
}

// keepSent forgets the sent commands that are no longer open.
func (s *subscriber) keepSent(open map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.sent {
		if !open[id] {
			delete(s.sent, id)
		}
	}
}

func (s *subscriber) close(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.closed)
	})
}

func (s *subscriber) notify() {
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already due; it will read everything
	}
}

// offerConfig keeps a configuration newer than any sent or waiting, and
// wakes the stream.
func (s *subscriber) offerConfig(cfg *agentv1.DesiredConfig) {
	s.mu.Lock()
	newer := cfg.GetGeneration() > s.configSent && (s.config == nil || cfg.GetGeneration() > s.config.GetGeneration())
	if newer {
		s.config = cfg
	}
	s.mu.Unlock()
	if newer {
		s.notify()
	}
}

// takeConfig returns the configuration to send, if any, and counts it sent.
func (s *subscriber) takeConfig() *agentv1.DesiredConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := s.config
	if cfg != nil {
		s.config, s.configSent = nil, cfg.GetGeneration()
	}
	return cfg
}

// hub holds the open streams of this replica by device.
type hub struct {
	mu   sync.RWMutex
	subs map[types.NamespacedName]map[*subscriber]struct{}
}

func newHub() *hub {
	return &hub{subs: map[types.NamespacedName]map[*subscriber]struct{}{}}
}

func (h *hub) add(key types.NamespacedName, configGeneration int64) *subscriber {
	s := &subscriber{
		wake:       make(chan struct{}, 1),
		closed:     make(chan struct{}),
		configSent: configGeneration,
		sent:       map[string]bool{},
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[key] == nil {
		h.subs[key] = map[*subscriber]struct{}{}
	}
	h.subs[key][s] = struct{}{}
	return s
}

func (h *hub) remove(key types.NamespacedName, s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[key], s)
	if len(h.subs[key]) == 0 {
		delete(h.subs, key)
	}
}

func (h *hub) get(key types.NamespacedName) []*subscriber {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*subscriber, 0, len(h.subs[key]))
	for s := range h.subs[key] {
		out = append(out, s)
	}
	return out
}
