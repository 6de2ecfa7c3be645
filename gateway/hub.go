package gateway

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// subscriberBuffer is how many messages wait for a slow stream before the
// gateway gives up on it; the agent reconnects and is sent everything again.
const subscriberBuffer = 64

// subscriber is one open Subscribe stream.
type subscriber struct {
	ch chan *agentv1.SubscribeResponse
	// closed ends the stream, with the reason in err.
	closed chan struct{}
	once   sync.Once
	err    error

	mu sync.Mutex
	// sent holds the command ids already sent on this stream.
	sent map[string]bool
	// config is the newest configuration generation sent.
	config int64
}

func (s *subscriber) close(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.closed)
	})
}

// offerCommand queues a command once per stream. It reports whether the
// command was queued now.
func (s *subscriber) offerCommand(cmd *agentv1.Command) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent[cmd.GetId()] {
		return false
	}
	if !s.push(&agentv1.SubscribeResponse{Message: &agentv1.SubscribeResponse_Command{Command: cmd}}) {
		return false
	}
	s.sent[cmd.GetId()] = true
	return true
}

// offerConfig queues a configuration newer than the last one sent.
func (s *subscriber) offerConfig(cfg *agentv1.DesiredConfig) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cfg.GetGeneration() <= s.config {
		return
	}
	if s.push(&agentv1.SubscribeResponse{Message: &agentv1.SubscribeResponse_Config{Config: cfg}}) {
		s.config = cfg.GetGeneration()
	}
}

func (s *subscriber) push(msg *agentv1.SubscribeResponse) bool {
	select {
	case s.ch <- msg:
		return true
	default:
		s.close(errSlowStream)
		return false
	}
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
		ch:     make(chan *agentv1.SubscribeResponse, subscriberBuffer),
		closed: make(chan struct{}),
		sent:   map[string]bool{},
		config: configGeneration,
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
