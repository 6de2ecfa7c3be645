package controllers

import (
	"maps"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// progressEvery is how often a running action's counts are written when
// they are all that changed. Each batch of results the gateway writes
// brings a pass that recounts; writing the counts back every time doubled
// the writes of a large action, each a write of its thousand rows, and
// raced the gateway's next batch into conflicts. The rows themselves, and
// the end of the action, are written at once.
const progressEvery = 2 * time.Second

// progressWrites remembers when each running action's counts were last
// written.
type progressWrites struct {
	mu   sync.Mutex
	last map[types.UID]time.Time
	// swept is when entries older than progressEvery were last dropped.
	// An entry that old holds nothing back; one whose action's deletion
	// was seen before its pass recorded it (a delete during the first
	// pass, before the finalizer is stored) would otherwise stay for the
	// manager's life.
	swept time.Time
}

// hold keeps the counts and conditions of a running action as they were
// read when they are all a pass changed and they were written less than
// progressEvery ago; it returns how long until they may be written, zero
// when this pass writes.
func (p *progressWrites) hold(read, action *mdmv1alpha1.DeviceAction, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		p.last = map[types.UID]time.Time{}
	}
	if now.Sub(p.swept) >= progressEvery {
		maps.DeleteFunc(p.last, func(_ types.UID, at time.Time) bool { return now.Sub(at) >= progressEvery })
		p.swept = now
	}
	if action.Status.Phase != mdmv1alpha1.ActionRunning {
		delete(p.last, action.UID)
		return 0
	}
	if read.Status.Phase != mdmv1alpha1.ActionRunning {
		p.last[action.UID] = now
		return 0
	}
	progressOnly := action.Status
	progressOnly.Summary, progressOnly.Conditions = read.Status.Summary, read.Status.Conditions
	switch {
	case !equality.Semantic.DeepEqual(progressOnly, read.Status):
		// More than the counts changed: they go with it.
	case equality.Semantic.DeepEqual(action.Status.Summary, read.Status.Summary) &&
		equality.Semantic.DeepEqual(action.Status.Conditions, read.Status.Conditions):
		return 0 // nothing to write
	default:
		if last, ok := p.last[action.UID]; ok && now.Sub(last) < progressEvery {
			action.Status.Summary = read.Status.Summary.DeepCopy()
			action.Status.Conditions = slices.Clone(read.Status.Conditions)
			return progressEvery - now.Sub(last)
		}
	}
	p.last[action.UID] = now
	return 0
}

// forget drops a deleted action.
func (p *progressWrites) forget(uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.last, uid)
}
