package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/patch"
)

// presenceManager is the field manager of lastSeen and the Connected
// condition. Server-side apply lets it own just those fields, so it never
// conflicts with the controllers writing the rest of the status.
const presenceManager = "kubemdm-gateway-presence"

// presence keeps lastSeen in memory and writes it to Device.status only when
// the connection changes or once per flush interval: a heartbeat never
// writes by itself.
type presence struct {
	client   client.Client
	log      logr.Logger
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	devices map[types.NamespacedName]*presenceEntry
	// dirty holds devices whose connection changed; they are written at once.
	dirty  map[types.NamespacedName]struct{}
	wakeup chan struct{}
}

type presenceEntry struct {
	uid       types.UID
	streams   int
	lastSeen  time.Time
	changedAt time.Time
	// flushedSeen and flushedAt are what was last written, and when.
	flushedSeen time.Time
	flushedAt   time.Time
}

func newPresence(c client.Client, log logr.Logger, interval time.Duration, now func() time.Time) *presence {
	return &presence{
		client: c, log: log, interval: interval, now: now,
		devices: map[types.NamespacedName]*presenceEntry{},
		dirty:   map[types.NamespacedName]struct{}{},
		wakeup:  make(chan struct{}, 1),
	}
}

func (p *presence) entry(key types.NamespacedName, uid types.UID) *presenceEntry {
	e := p.devices[key]
	if e == nil || e.uid != uid {
		e = &presenceEntry{uid: uid}
		p.devices[key] = e
	}
	return e
}

// seen records a heartbeat: memory only.
func (p *presence) seen(key types.NamespacedName, uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.entry(key, uid).lastSeen = p.now()
}

// connected records a stream opening; the first one is written at once.
func (p *presence) connected(key types.NamespacedName, uid types.UID) {
	p.change(key, uid, +1)
}

// disconnected records a stream closing; the last one is written at once.
func (p *presence) disconnected(key types.NamespacedName, uid types.UID) {
	p.change(key, uid, -1)
}

func (p *presence) change(key types.NamespacedName, uid types.UID, delta int) {
	p.mu.Lock()
	e := p.entry(key, uid)
	before := e.streams > 0
	e.streams += delta
	e.lastSeen = p.now()
	if after := e.streams > 0; after != before {
		e.changedAt = e.lastSeen
		p.dirty[key] = struct{}{}
	}
	p.mu.Unlock()
	select {
	case p.wakeup <- struct{}{}:
	default:
	}
}

// run writes connection changes as they happen and lastSeen once per
// interval, and forgets disconnected devices after they were written.
func (p *presence) run(ctx context.Context) {
	tick := time.NewTicker(min(p.interval, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wakeup:
		case <-tick.C:
		}
		p.flush(ctx)
	}
}

// flush writes what is due. A failed write stays due and is retried on the
// next tick, so a disconnect is never lost; a Device that was deleted or
// replaced in the meantime is forgotten quietly, since there is nothing left
// to mark.
func (p *presence) flush(ctx context.Context) {
	for _, w := range p.due() {
		err := p.write(ctx, w)
		switch {
		case err == nil:
			p.written(w)
		case deviceGone(err):
			p.log.V(1).Info("Device is gone; forgetting its presence", "device", w.key)
			p.forget(w.key, w.uid)
		default:
			p.log.Error(err, "Writing device presence; retrying", "device", w.key)
			p.requeue(w.key)
		}
	}
}

// deviceGone reports whether a presence write failed because the Device no
// longer exists under the UID the agent enrolled as. The apply forces
// ownership and sets no resourceVersion, so its only possible conflict is
// the UID precondition: the Device was deleted and created again.
func deviceGone(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsConflict(err)
}

type presenceWrite struct {
	key       types.NamespacedName
	uid       types.UID
	connected bool
	// changed is true when the write records a stream opening or closing.
	changed   bool
	lastSeen  time.Time
	changedAt time.Time
}

func (p *presence) due() []presenceWrite {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	var out []presenceWrite
	for key, e := range p.devices {
		_, changed := p.dirty[key]
		stale := e.lastSeen.After(e.flushedSeen) && now.Sub(e.flushedAt) >= p.interval
		if !changed && !stale {
			continue
		}
		connected := e.streams > 0
		if e.changedAt.IsZero() {
			e.changedAt = e.lastSeen
		}
		out = append(out, presenceWrite{key: key, uid: e.uid, connected: connected, changed: changed, lastSeen: e.lastSeen, changedAt: e.changedAt})
		delete(p.dirty, key)
		e.flushedSeen, e.flushedAt = e.lastSeen, now
	}
	return out
}

// written forgets a device whose last stream closed, once that is stored and
// nothing new happened to it meanwhile. A polling device stays held, so that
// its lastSeen keeps to the flush interval.
func (p *presence) written(w presenceWrite) {
	if w.connected || !w.changed {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, dirty := p.dirty[w.key]; !dirty {
		p.forgetLocked(w.key, w.uid)
	}
}

func (p *presence) forget(key types.NamespacedName, uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forgetLocked(key, uid)
}

func (p *presence) forgetLocked(key types.NamespacedName, uid types.UID) {
	if e := p.devices[key]; e != nil && e.uid == uid && e.streams <= 0 {
		delete(p.devices, key)
		delete(p.dirty, key)
	}
}

func (p *presence) requeue(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.devices[key]; ok {
		p.dirty[key] = struct{}{}
	}
}

func (p *presence) write(ctx context.Context, w presenceWrite) error {
	status, reason, message := metav1.ConditionTrue, "StreamOpen", "The agent holds a stream to the gateway"
	if !w.connected {
		status, reason, message = metav1.ConditionFalse, "StreamClosed", "The agent has no stream to the gateway"
	}
	return patch.ApplyDeviceStatus(ctx, p.client, w.key, w.uid, presenceManager, map[string]any{
		"lastSeen": metav1.NewTime(w.lastSeen).ToUnstructured(),
		"conditions": []any{map[string]any{
			"type":               mdmv1alpha1.DeviceConditionConnected,
			"status":             string(status),
			"reason":             reason,
			"message":            message,
			"lastTransitionTime": metav1.NewTime(w.changedAt).ToUnstructured(),
		}},
	})
}
