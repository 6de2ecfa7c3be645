package controllers

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// TestActionEventsPriority: the actions a restarted manager lists are
// queued at normal priority while unfinished, so that they are not taken up
// only after every result write of the actions already running; finished
// ones, and resyncs, wait behind real changes. Each unstarted action is
// stamped as it arrives.
func TestActionEventsPriority(t *testing.T) {
	action := func(name, rv string, phase mdmv1alpha1.ActionPhase, started bool) *mdmv1alpha1.DeviceAction {
		a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(name), ResourceVersion: rv}}
		a.Status.Phase = phase
		if started {
			a.Status.StartTime = &metav1.Time{}
		}
		return a
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name     string
		send     func(h actionEvents, q priorityqueue.PriorityQueue[reconcile.Request])
		priority int
		arrived  bool
	}{
		{"an unstarted action the restart lists", func(h actionEvents, q priorityqueue.PriorityQueue[reconcile.Request]) {
			h.Create(context.Background(), event.CreateEvent{Object: action("a", "1", "", false), IsInInitialList: true}, q)
		}, 0, true},
		{"a running action the restart lists", func(h actionEvents, q priorityqueue.PriorityQueue[reconcile.Request]) {
			h.Create(context.Background(), event.CreateEvent{Object: action("a", "1", mdmv1alpha1.ActionRunning, true), IsInInitialList: true}, q)
		}, 0, false},
		{"a finished action the restart lists", func(h actionEvents, q priorityqueue.PriorityQueue[reconcile.Request]) {
			h.Create(context.Background(), event.CreateEvent{Object: action("a", "1", mdmv1alpha1.ActionSucceeded, true), IsInInitialList: true}, q)
		}, handler.LowPriority, false},
		{"a new action", func(h actionEvents, q priorityqueue.PriorityQueue[reconcile.Request]) {
			h.Create(context.Background(), event.CreateEvent{Object: action("a", "1", "", false)}, q)
		}, 0, true},
		{"a written action", func(h actionEvents, q priorityqueue.PriorityQueue[reconcile.Request]) {
			h.Update(context.Background(), event.UpdateEvent{ObjectOld: action("a", "1", mdmv1alpha1.ActionRunning, true), ObjectNew: action("a", "2", mdmv1alpha1.ActionRunning, true)}, q)
		}, 0, false},
		{"a resync", func(h actionEvents, q priorityqueue.PriorityQueue[reconcile.Request]) {
			h.Update(context.Background(), event.UpdateEvent{ObjectOld: action("a", "1", mdmv1alpha1.ActionRunning, true), ObjectNew: action("a", "1", mdmv1alpha1.ActionRunning, true)}, q)
		}, handler.LowPriority, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := priorityqueue.New[reconcile.Request]("test")
			defer q.ShutDown()
			var o startOrder
			tc.send(actionEvents{order: &o, progress: &progressWrites{}, now: func() time.Time { return now }}, q)
			req, priority, _ := q.GetWithPriority()
			if req.Name != "a" || priority != tc.priority {
				t.Errorf("queued %v at priority %d, want priority %d", req, priority, tc.priority)
			}
			if _, arrived := o.waiting["a"]; arrived != tc.arrived {
				t.Errorf("stamped on arrival: %v, want %v", arrived, tc.arrived)
			}
		})
	}
}
