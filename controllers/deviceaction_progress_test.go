package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/conditions"
)

// TestProgressWrites: a pass that changed only a running action's counts
// writes them at most every progressEvery after the last write, the one
// that started the action included, and is told when to come back; a pass
// that started the action, changed a row, or ended the action writes at
// once.
func TestProgressWrites(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	read := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{UID: "a"}}
	read.Status.Phase = mdmv1alpha1.ActionRunning
	read.Status.Devices = []mdmv1alpha1.DeviceResult{{Name: "d0", Phase: mdmv1alpha1.CommandSucceeded}, {Name: "d1", Phase: mdmv1alpha1.CommandQueued}}
	read.Status.Summary = &mdmv1alpha1.ActionSummary{Total: 2, Queued: 2}
	conditions.MarkReconciling(read, "Running", "2 of 2 devices still to answer")
	recounted := func() *mdmv1alpha1.DeviceAction {
		a := read.DeepCopy()
		a.Status.Summary = summarize(a.Status.Devices)
		conditions.MarkReconciling(a, "Running", "1 of 2 devices still to answer")
		return a
	}
	var p progressWrites

	pending := read.DeepCopy()
	pending.Status.Phase, pending.Status.Summary = mdmv1alpha1.ActionPending, nil
	started := read.DeepCopy()
	if wait := p.hold(pending, started, now.Add(-time.Second)); wait != 0 {
		t.Fatalf("the pass that started the action is held %s", wait)
	}
	// The gateway's first deliveries come a moment after the rows; their
	// counts alone wait, so that a fan-out's rows are not written again
	// between its deliveries and its results.
	early := recounted()
	if wait := p.hold(read, early, now.Add(-500*time.Millisecond)); wait != progressEvery-500*time.Millisecond ||
		early.Status.Summary.Queued != 2 {
		t.Errorf("counts alone, 500ms after the start, held %s with counts %+v", wait, early.Status.Summary)
	}

	rowChanged := recounted()
	rowChanged.Status.Devices[1].Phase = mdmv1alpha1.CommandExpired
	if wait := p.hold(read, rowChanged, now); wait != 0 || rowChanged.Status.Summary.Queued != 1 {
		t.Fatalf("a pass that changed a row is held %s", wait)
	}

	counts := recounted()
	if wait := p.hold(read, counts, now.Add(500*time.Millisecond)); wait != progressEvery-500*time.Millisecond {
		t.Errorf("counts alone, 500ms after the last write: come back in %s", wait)
	}
	if counts.Status.Summary.Queued != 2 || conditions.Message(counts, mdmv1alpha1.ConditionReconciling) != "2 of 2 devices still to answer" {
		t.Errorf("held counts were not put back as read: %+v", counts.Status)
	}

	later := recounted()
	if wait := p.hold(read, later, now.Add(progressEvery)); wait != 0 || later.Status.Summary.Queued != 1 {
		t.Errorf("counts alone, %s after the last write, held %s", progressEvery, wait)
	}

	finished := recounted()
	finished.Status.Phase = mdmv1alpha1.ActionSucceeded
	if wait := p.hold(read, finished, now.Add(progressEvery+time.Millisecond)); wait != 0 || finished.Status.Summary.Queued != 1 {
		t.Errorf("the end of the action held %s", wait)
	}
	if _, ok := p.last["a"]; ok {
		t.Error("a finished action is still remembered")
	}

	if wait := p.hold(read, read.DeepCopy(), now); wait != 0 {
		t.Errorf("a pass that changed nothing is told to come back in %s", wait)
	}

	// An action deleted during its first pass, whose deletion was seen
	// before the pass recorded its start, is not remembered for long.
	var q progressWrites
	q.forget("gone")
	gone := read.DeepCopy()
	gone.UID = "gone"
	q.hold(pending, gone, now)
	other := read.DeepCopy()
	other.UID = "other"
	q.hold(pending, other, now.Add(progressEvery))
	if _, ok := q.last["gone"]; ok {
		t.Errorf("the start of a deleted action is remembered %s later", progressEvery)
	}
	if _, ok := q.last["other"]; !ok {
		t.Error("a running action's last write was forgotten")
	}
}
