package controllers

import (
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// startOrder starts actions that share a device in the order they were
// created: by creation second, as the gateway orders commands, and within
// one second by arrival. The watch delivers creates in order, and each
// action is stamped as it arrives, before any worker takes it up: several
// workers reconcile actions at once, and two actions created in the same
// second for one device could otherwise reach it in the order their
// workers happened to run. An action that waits (for its targets to
// settle, or for an older one) looks again on its own timer; until it
// starts, newer actions on its devices, or in its namespace while its
// devices are not known yet, wait for it. Kept in memory: a restarted
// manager stamps the actions it lists in name order, and within a
// creation second orders by name, as the gateway does.
type startOrder struct {
	mu      sync.Mutex
	waiting map[types.UID]waitingStart
}

// waitingStart is an action that arrived and has not started yet.
type waitingStart struct {
	created   time.Time
	arrived   time.Time
	namespace string
	// devices are its targets, nil until it resolved them.
	devices []string
}

// arrive stamps an action the watch delivered; an action stamped already
// keeps its first stamp.
func (o *startOrder) arrive(uid types.UID, created time.Time, namespace string, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.waiting == nil {
		o.waiting = map[types.UID]waitingStart{}
	}
	if _, ok := o.waiting[uid]; !ok {
		o.waiting[uid] = waitingStart{created: created, arrived: now, namespace: namespace}
	}
}

// before reports whether w goes before me.
func (w waitingStart) before(me waitingStart) bool {
	if !w.created.Equal(me.created) {
		return w.created.Before(me.created)
	}
	return w.arrived.Before(me.arrived)
}

// resolved records the action's targets and returns when it arrived.
func (o *startOrder) resolved(uid types.UID, created time.Time, namespace string, devices []string, now time.Time) time.Time {
	o.arrive(uid, created, namespace, now)
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.waiting[uid]
	w.devices = devices
	if w.devices == nil {
		w.devices = []string{}
	}
	o.waiting[uid] = w
	return w.arrived
}

// olderWaiting reports whether an action that arrived before this one,
// within the last unsettledGrace, still waits to start on one of the same
// devices, or has yet to say which devices it targets. Entries older than
// that are dropped: their actions started, were deleted, or judge their
// targets as they are by now.
func (o *startOrder) olderWaiting(uid types.UID, devices []string, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	me, ok := o.waiting[uid]
	if !ok {
		return false
	}
	mine := make(map[string]bool, len(devices))
	for _, d := range devices {
		mine[d] = true
	}
	older := false
	for other, w := range o.waiting {
		switch {
		case now.Sub(w.arrived) >= unsettledGrace:
			delete(o.waiting, other)
		case other != uid && w.namespace == me.namespace && w.before(me) &&
			(w.devices == nil || slices.ContainsFunc(w.devices, func(d string) bool { return mine[d] })):
			older = true
		}
	}
	return older
}

// olderUnresolved reports whether an action that goes before this one, in
// its namespace and within the last unsettledGrace, has yet to say which
// devices it targets.
func (o *startOrder) olderUnresolved(uid types.UID, created time.Time, namespace string, now time.Time) bool {
	o.arrive(uid, created, namespace, now)
	o.mu.Lock()
	defer o.mu.Unlock()
	me := o.waiting[uid]
	for other, w := range o.waiting {
		if other != uid && w.devices == nil && w.namespace == namespace && w.before(me) && now.Sub(w.arrived) < unsettledGrace {
			return true
		}
	}
	return false
}

// forget drops an action that started, or never will.
func (o *startOrder) forget(uid types.UID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.waiting, uid)
}
