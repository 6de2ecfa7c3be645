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
	// configDue is set when the device's configuration may have changed:
	// the stream renders it from the cache when it wakes, so renders
	// never overtake one another.
	configDue bool
	// configSent is the configuration generation and digest last sent or
	// held by the agent.
	configSent configVersion
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
	if s.sent == nil {
		s.sent = map[string]bool{}
	}
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
	// A map keeps its room once emptied; an idle stream holds none.
	if len(s.sent) == 0 {
		s.sent = nil
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

// configVersion identifies a DesiredConfig: the Device's generation and
// the digest of its configurations.
type configVersion struct {
	generation int64
	digest     string
}

func versionOf(cfg *agentv1.DesiredConfig) configVersion {
	return configVersion{cfg.GetGeneration(), cfg.GetConfigurationsDigest()}
}

// offerConfig marks the configuration due for a render and wakes the
// stream.
func (s *subscriber) offerConfig() {
	s.mu.Lock()
	s.configDue = true
	s.mu.Unlock()
	s.notify()
}

// takeConfigDue reports whether a render is due, and clears it.
func (s *subscriber) takeConfigDue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	due := s.configDue
	s.configDue = false
	return due
}

// shouldSend reports whether cfg differs from what the agent holds and, if
// so, counts it sent.
func (s *subscriber) shouldSend(cfg *agentv1.DesiredConfig) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !differs(cfg, s.configSent) {
		return false
	}
	v := versionOf(cfg)
	if cfg.GetConfigurationsHeld() {
		// The agent keeps the configurations it has.
		v.digest = s.configSent.digest
	}
	s.configSent = v
	return true
}

// differs reports whether cfg is news to an agent that holds held. A
// generation older than the agent's is not: the cache went back for a
// moment. While the configurations are held, only a new generation is:
// the agent keeps its configurations, and sending it the same held
// configuration again on every Poll would only make it report again.
func differs(cfg *agentv1.DesiredConfig, held configVersion) bool {
	v := versionOf(cfg)
	switch {
	case v.generation < held.generation:
		return false
	case cfg.GetConfigurationsHeld():
		return v.generation != held.generation
	}
	return v != held
}

// hub holds the open streams of this replica by device.
type hub struct {
	mu   sync.RWMutex
	subs map[types.NamespacedName]map[*subscriber]struct{}
}

func newHub() *hub {
	return &hub{subs: map[types.NamespacedName]map[*subscriber]struct{}{}}
}

func (h *hub) add(key types.NamespacedName, held configVersion) *subscriber {
	s := &subscriber{
		wake:       make(chan struct{}, 1),
		closed:     make(chan struct{}),
		configDue:  true,
		configSent: held,
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

// inNamespace returns the open streams of a namespace's devices.
func (h *hub) inNamespace(ns string) []*subscriber {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*subscriber
	for key, subs := range h.subs {
		if key.Namespace != ns {
			continue
		}
		for s := range subs {
			out = append(out, s)
		}
	}
	return out
}
