package controllers

import (
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// startOrder keeps actions that wait for their targets to settle in the
// order the controller first saw them, which is the order they were
// created: the watch delivers creates in that order and one worker
// reconciles actions. Two actions created in the same second for a device
// an enrollment just created both wait for its phase; each looks again on
// its own timer, and without this the newer could start, and reach the
// device, first. Kept in memory: a restarted manager orders by creation
// second and name, as the gateway does.
type startOrder struct {
	mu      sync.Mutex
	waiting map[types.UID]waitingStart
}

// waitingStart is an action seen and not started yet.
type waitingStart struct {
	seen    time.Time
	devices []string
}

// seen records the action's first look at its targets and returns when that
// was.
func (o *startOrder) seen(uid types.UID, devices []string, now time.Time) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.waiting == nil {
		o.waiting = map[types.UID]waitingStart{}
	}
	w, ok := o.waiting[uid]
	if !ok {
		w = waitingStart{seen: now, devices: devices}
		o.waiting[uid] = w
	}
	return w.seen
}

// olderWaiting reports whether an action seen before this one, within the
// last unsettledGrace, still waits to start on one of the same devices.
// Entries older than that are dropped: their actions started, were
// deleted, or judge their targets as they are by now.
func (o *startOrder) olderWaiting(uid types.UID, devices []string, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	me, ok := o.waiting[uid]
	if !ok {
		return false
	}
	older := false
	for other, w := range o.waiting {
		switch {
		case now.Sub(w.seen) >= unsettledGrace:
			delete(o.waiting, other)
		case other != uid && w.seen.Before(me.seen) &&
			slices.ContainsFunc(w.devices, func(d string) bool { return slices.Contains(devices, d) }):
			older = true
		}
	}
	return older
}

// started forgets an action that started.
func (o *startOrder) started(uid types.UID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.waiting, uid)
}
