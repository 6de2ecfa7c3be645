package gateway

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/patch"
)

// Reasons of the Connected condition.
const (
	reasonStreamOpen   = "StreamOpen"
	reasonStreamClosed = "StreamClosed"
	reasonGatewayGone  = "GatewayGone"
)

// errMoved is a disconnect not written because the device streams to
// another replica now.
var errMoved = errors.New("the device moved to another gateway replica")

// presence keeps lastSeen in memory and writes it to Device.status only when
// the connection changes or once per flush interval: a heartbeat never
// writes by itself.
//
// A stream that opens is written at once, naming this replica. A stream that
// closes is written only after the grace, and only if the device did not
// come back meanwhile, here or on another replica: a device that moves
// between replicas never shows Connected=False.
type presence struct {
	client client.Client
	// reader reads a Device afresh when a guarded write met a newer one.
	reader   client.Reader
	log      logr.Logger
	replica  string
	interval time.Duration
	grace    time.Duration
	now      func() time.Time

	mu      sync.Mutex
	devices map[types.NamespacedName]*presenceEntry
	// dirty holds devices whose connection changed.
	dirty  map[types.NamespacedName]struct{}
	wakeup chan struct{}
	// stopping is set when the gateway shuts down: the streams it closes
	// then are handed over, not written as disconnects.
	stopping bool
}

type presenceEntry struct {
	uid     types.UID
	streams int
	// handedOver is set for a stream the stopping gateway closed itself:
	// its device reconnects elsewhere and is not written here again.
	handedOver bool
	lastSeen   time.Time
	// changedAt is when streams last crossed zero.
	changedAt time.Time
	// stored is whether the stored status says connected, with the
	// transition time it holds; known once this replica wrote it.
	stored       *bool
	storedChange time.Time
	// flushedSeen and flushedAt are the lastSeen last written, and when.
	flushedSeen time.Time
	flushedAt   time.Time
	// reportBy is, for a stream that opened with a configuration sent,
	// how long its opening waits for the agent's report of it, which
	// then carries the opening in the same write.
	reportBy time.Time
	// shown is set for a stream that opened while the Device, as the
	// cache had it, already showed the device connected through this
	// replica: there is no opening to write. A reconnect storm after a
	// restart of this replica is all such openings. observed claims the
	// device again should the Device say otherwise later.
	shown bool
}

func newPresence(c client.Client, reader client.Reader, log logr.Logger, replica string, interval, grace time.Duration, now func() time.Time) *presence {
	return &presence{
		client: c, reader: reader, log: log, replica: replica, interval: interval, grace: grace, now: now,
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

// openingReportWait is how long a stream opening that sent the agent a
// configuration waits for the agent's report of it: the report is written
// anyway, and carries the opening with it. An agent that has not reported
// by then is shown connected without it.
const openingReportWait = 5 * time.Second

// opened records a stream opening of d, as the cache has it; the first one
// is written at once or, when reportDue, with the agent's report, within
// openingReportWait, unless d shows it connected here already.
func (p *presence) opened(d *mdmv1alpha1.Device, reportDue bool) {
	p.change(client.ObjectKeyFromObject(d), d.UID, +1, reportDue, p.showsMine(d))
}

// showsMine reports whether d shows its device connected through this
// replica.
func (p *presence) showsMine(d *mdmv1alpha1.Device) bool {
	g, ok := connectionGateway(d)
	return ok && g == p.replica
}

// observed compares a Device the informer delivered with the streams held
// here. A stream whose opening was not written because the Device showed
// it connected here already is claimed again when the Device shows it
// disconnected: the cache was behind a disconnect written elsewhere (the
// device passed through another replica), or that was written since.
func (p *presence) observed(d *mdmv1alpha1.Device) {
	if _, ok := connectionGateway(d); ok {
		return
	}
	key := client.ObjectKeyFromObject(d)
	p.mu.Lock()
	e := p.devices[key]
	claim := e != nil && e.uid == d.UID && e.streams > 0 && e.shown
	if claim {
		e.shown = false
		e.stored = nil
		p.dirty[key] = struct{}{}
	}
	p.mu.Unlock()
	if claim {
		p.wake()
	}
}

// reportNotDue writes a stream opening recorded as awaiting a report at
// once: the stream sent nothing to report on.
func (p *presence) reportNotDue(key types.NamespacedName, uid types.UID) {
	p.mu.Lock()
	if e := p.devices[key]; e != nil && e.uid == uid {
		e.reportBy = time.Time{}
	}
	p.mu.Unlock()
	p.wake()
}

// reportArriving tells an opening that awaits the agent's report that the
// report came and waits for its turn to write (in a storm, longer than
// openingReportWait): the opening keeps waiting for it, until at most. The
// returned release writes the opening on its own if the report did not
// carry it.
func (p *presence) reportArriving(key types.NamespacedName, uid types.UID, until time.Time) (release func()) {
	p.mu.Lock()
	e := p.devices[key]
	held := e != nil && e.uid == uid && e.streams > 0 && !e.reportBy.IsZero()
	if held && until.After(e.reportBy) {
		e.reportBy = until
	}
	p.mu.Unlock()
	if !held {
		return func() {}
	}
	// Carried, the opening waits no longer: handing it back is harmless.
	return func() { p.reportNotDue(key, uid) }
}

// disconnected records a stream closing; the last one is written after the
// grace.
func (p *presence) disconnected(key types.NamespacedName, uid types.UID) {
	p.change(key, uid, -1, false, false)
}

// wake has the writer look at the due writes now.
func (p *presence) wake() {
	select {
	case p.wakeup <- struct{}{}:
	default:
	}
}

// change records a stream opening or closing. The opening's wait for a
// report is set under the same lock, before the writer is woken, so that
// the writer never takes the opening as due in between.
func (p *presence) change(key types.NamespacedName, uid types.UID, delta int, reportDue, shown bool) {
	p.mu.Lock()
	if e := p.devices[key]; delta < 0 && e != nil && e.uid != uid {
		// A stream of a Device since replaced closed: the new one's
		// entry is not its concern.
		p.mu.Unlock()
		return
	}
	e := p.entry(key, uid)
	before := e.streams > 0
	e.streams += delta
	e.lastSeen = p.now()
	e.reportBy = time.Time{}
	if delta > 0 {
		e.shown = shown
	}
	switch after := e.streams > 0; {
	case after == before:
	case p.stopping && !after:
		e.handedOver = true
		delete(p.dirty, key)
	default:
		e.changedAt = e.lastSeen
		p.dirty[key] = struct{}{}
	}
	if reportDue && e.streams > 0 {
		e.reportBy = e.changedAt.Add(openingReportWait)
	}
	p.mu.Unlock()
	p.wake()
}

// holds reports whether this replica holds a stream of the device, or has
// a connection change of it still to write.
func (p *presence) holds(key types.NamespacedName) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, dirty := p.dirty[key]
	e := p.devices[key]
	return dirty || (e != nil && e.streams > 0)
}

// run writes connection changes as they fall due and lastSeen once per
// interval, until ctx ends.
func (p *presence) run(ctx context.Context) {
	tick := time.NewTicker(min(p.interval, p.grace, time.Second))
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

// stop makes the streams closed from now on handed over: the devices will
// reconnect to another replica (or to this one restarted), and the others
// mark those that do not once this replica's Lease is gone. It must be
// called before the streams are closed.
func (p *presence) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopping = true
}

// presenceWorkers bounds the writes in flight: a reconnect storm of a
// whole fleet is written in parallel, not one device after another.
const presenceWorkers = 8

// flush writes what is due, stream openings first. A failed write stays due
// and is retried on the next tick, so a disconnect is never lost; a Device
// that was deleted or replaced in the meantime is forgotten quietly, since
// there is nothing left to mark.
func (p *presence) flush(ctx context.Context) {
	due := p.due()
	slices.SortStableFunc(due, func(a, b presenceWrite) int {
		switch {
		case a.connected == b.connected:
			return 0
		case a.connected:
			return -1
		}
		return 1
	})
	inParallel(presenceWorkers, due, func(w presenceWrite) {
		err := p.write(ctx, w)
		presenceFlushes.WithLabelValues(map[bool]string{true: "error", false: "ok"}[err != nil]).Inc()
		p.finish(w, err)
	})
}

// finish records the outcome of a write.
func (p *presence) finish(w presenceWrite, err error) {
	switch {
	case err == nil:
		p.written(w)
	case errors.Is(err, errMoved):
		p.log.V(1).Info("Device moved to another gateway replica; not writing it here", "device", w.key)
		p.forget(w.key, w.uid)
	case deviceGone(err):
		p.log.V(1).Info("Device is gone; forgetting its presence", "device", w.key)
		p.forget(w.key, w.uid)
	default:
		p.log.Error(err, "Writing device presence; retrying", "device", w.key)
		p.requeue(w.key)
	}
}

// reclaim makes every stream this replica holds due for writing again: its
// Lease lapsed, so the other replicas may have marked them disconnected.
func (p *presence) reclaim() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, e := range p.devices {
		if e.streams > 0 {
			e.stored = nil
			e.shown = false
			p.dirty[key] = struct{}{}
		}
	}
}

// deviceGone reports whether a presence write failed because the Device no
// longer exists under the UID the agent enrolled as.
func deviceGone(err error) bool {
	return apierrors.IsNotFound(err) || errors.Is(err, errReplaced)
}

var errReplaced = errors.New("the Device was replaced")

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
		if w, ok := p.dueLocked(key, e, now, false); ok {
			out = append(out, w)
		}
	}
	return out
}

// takeOpening hands a stream opening still to be written to the report
// about to be written for the device, which carries it; finish tells how
// that write went.
func (p *presence) takeOpening(key types.NamespacedName, uid types.UID) (presenceWrite, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.devices[key]
	if e == nil || e.uid != uid || e.streams <= 0 {
		return presenceWrite{}, false
	}
	return p.dueLocked(key, e, p.now(), true)
}

// dueLocked returns the write due for a device, if any, and records it as
// stored. An opening waiting for its report is not due yet, unless the
// report is what asks.
func (p *presence) dueLocked(key types.NamespacedName, e *presenceEntry, now time.Time, report bool) (presenceWrite, bool) {
	if e.handedOver && e.streams <= 0 {
		return presenceWrite{}, false
	}
	connected := e.streams > 0
	_, changed := p.dirty[key]
	if changed && e.stored != nil && *e.stored == connected {
		// Back before its disconnect was written. It may have passed
		// through another replica meanwhile, so a device back here
		// is claimed again; one gone again is nothing new.
		delete(p.dirty, key)
		changed = false
		if connected {
			e.stored = nil
		}
	}
	if changed && !connected && now.Sub(e.changedAt) < p.grace {
		return presenceWrite{}, false
	}
	if connected && e.shown {
		// Shown connected here already: nothing to write.
		delete(p.dirty, key)
		e.stored = &connected
		e.reportBy = time.Time{}
		return presenceWrite{}, false
	}
	if connected && !report && now.Before(e.reportBy) {
		return presenceWrite{}, false
	}
	// A device that holds its stream is seen now: its lastSeen is
	// written when the stream opens and closes, never in between. Only
	// a polling device's is refreshed, once per interval.
	stale := !connected && e.lastSeen.After(e.flushedSeen) && now.Sub(e.flushedAt) >= p.interval
	claim := connected && e.stored == nil
	if !changed && !stale && !claim {
		return presenceWrite{}, false
	}
	w := presenceWrite{key: key, uid: e.uid, connected: connected, changed: changed,
		lastSeen: e.lastSeen, changedAt: e.storedChange}
	if changed || e.stored == nil {
		w.changedAt = e.changedAt
		if w.changedAt.IsZero() {
			w.changedAt = e.lastSeen
		}
		e.storedChange = w.changedAt
	}
	e.stored = &w.connected
	e.reportBy = time.Time{}
	e.shown = false
	delete(p.dirty, key)
	e.flushedSeen, e.flushedAt = e.lastSeen, now
	return w, true
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
	if e, ok := p.devices[key]; ok {
		e.stored = nil
		p.dirty[key] = struct{}{}
	}
}

// write stores a presence change. An open stream is written whatever the
// Device says: the newest connection wins wherever it is. Anything else is
// written only while the Device still names this replica (or none), so that
// a replica the device left never overwrites the one it moved to.
func (p *presence) write(ctx context.Context, w presenceWrite) error {
	if w.connected {
		return p.writeGuarded(ctx, w.key, w.uid, nil, func(d *mdmv1alpha1.Device) map[string]any { return p.openStatus(d, w) })
	}
	return p.writeGuarded(ctx, w.key, w.uid, p.stillMine, func(d *mdmv1alpha1.Device) map[string]any {
		return presenceStatus(nil, w.lastSeen, disconnectedSince(d, w.changedAt), reasonStreamClosed, "The agent has no stream to the gateway")
	})
}

// openStatus is the connection part of the status for a stream open here.
// A device shown connected already (it came back, or moved from another
// replica) keeps the time it became connected.
func (p *presence) openStatus(d *mdmv1alpha1.Device, w presenceWrite) map[string]any {
	since := w.changedAt
	if c := meta.FindStatusCondition(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected); c != nil && c.Status == metav1.ConditionTrue {
		since = c.LastTransitionTime.Time
	}
	return presenceStatus(&mdmv1alpha1.DeviceConnection{Gateway: p.replica}, w.lastSeen, since,
		reasonStreamOpen, "The agent holds a stream to gateway replica "+p.replica)
}

// stillMine lets a write through unless the Device names another replica.
func (p *presence) stillMine(d *mdmv1alpha1.Device) error {
	if c := d.Status.Connection; c != nil && c.Gateway != p.replica {
		return errMoved
	}
	return nil
}

// writeGuarded writes the connection part of the status that part returns
// for the Device as it was read, if check (when given) lets it; the facts
// go along as read.
func (p *presence) writeGuarded(ctx context.Context, key types.NamespacedName, uid types.UID, check func(*mdmv1alpha1.Device) error, part func(*mdmv1alpha1.Device) map[string]any) error {
	return p.applyGuarded(ctx, key, uid, check, func(d *mdmv1alpha1.Device) (map[string]any, error) {
		return gatewayStatus(d, part(d), connectionFields)
	})
}

// applyGuarded applies, as statusManager, the status that status returns
// for the Device as it was read, if check (when given) lets it. It reads
// from the cache first and, when that was stale, from the apiserver; the
// write is guarded by the resourceVersion read, so check held, and the
// fields copied were current, for what it overwrites.
func (p *presence) applyGuarded(ctx context.Context, key types.NamespacedName, uid types.UID, check func(*mdmv1alpha1.Device) error, status func(*mdmv1alpha1.Device) (map[string]any, error)) error {
	d := &mdmv1alpha1.Device{}
	read := p.client.Get
	for attempt := 0; ; attempt++ {
		if err := read(ctx, key, d); err != nil {
			return err
		}
		if d.UID != uid {
			return errReplaced
		}
		if check != nil {
			if err := check(d); err != nil {
				return err
			}
		}
		st, err := status(d)
		if err != nil {
			return err
		}
		err = patch.ApplyDeviceStatusAt(ctx, p.client, d, statusManager, st)
		if !apierrors.IsConflict(err) || attempt == 2 {
			return err
		}
		read = p.reader.Get
	}
}

// disconnectedSince keeps the transition time of a Device already shown
// disconnected, as a polling device is between its polls.
func disconnectedSince(d *mdmv1alpha1.Device, t time.Time) time.Time {
	if c := meta.FindStatusCondition(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected); c != nil && c.Status == metav1.ConditionFalse {
		return c.LastTransitionTime.Time
	}
	return t
}

// presenceStatus is the status presence owns: lastSeen, connection (nil
// when disconnected) and the Connected condition.
func presenceStatus(conn *mdmv1alpha1.DeviceConnection, lastSeen, changedAt time.Time, reason, message string) map[string]any {
	status := metav1.ConditionFalse
	if conn != nil {
		status = metav1.ConditionTrue
	}
	out := map[string]any{
		"conditions": []any{map[string]any{
			"type":               mdmv1alpha1.DeviceConditionConnected,
			"status":             string(status),
			"reason":             reason,
			"message":            message,
			"lastTransitionTime": metav1.NewTime(changedAt).ToUnstructured(),
		}},
	}
	if !lastSeen.IsZero() {
		out["lastSeen"] = metav1.NewTime(lastSeen).ToUnstructured()
	}
	if conn != nil {
		out["connection"] = map[string]any{"gateway": conn.Gateway}
	}
	return out
}
