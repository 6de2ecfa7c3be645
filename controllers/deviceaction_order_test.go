package controllers

import (
	"testing"
	"time"
)

// TestStartOrder: of two actions on one device, the one that arrived first
// starts first, whichever looks again first and whichever resolved its
// targets first; an older action whose targets are not known yet holds back
// the newer ones of its namespace only; actions on other devices, and
// entries past the grace, hold nothing back.
func TestStartOrder(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	second := now.Truncate(time.Second) // all created in one second
	var o startOrder
	o.arrive("sync", second, "ns", now)
	o.arrive("lock", second, "ns", now.Add(time.Millisecond))
	o.arrive("elsewhere", second, "ns", now.Add(2*time.Millisecond))
	o.arrive("other-namespace", second, "other", now.Add(3*time.Millisecond))
	at := now.Add(300 * time.Millisecond)

	// The newer ones resolve their targets first: the older one, whose
	// targets are not known yet, holds back its namespace.
	lockArrived := o.resolved("lock", second, "ns", []string{"busy-1", "other"}, at)
	o.resolved("elsewhere", second, "ns", []string{"other-2"}, at)
	o.resolved("other-namespace", second, "other", []string{"busy-1"}, at)
	if !o.olderWaiting("elsewhere", []string{"other-2"}, at) ||
		!o.olderUnresolved("elsewhere", second, "ns", at) {
		t.Error("an action starts before an older one of its namespace said which devices it targets")
	}
	if o.olderUnresolved("other-namespace", second, "other", at) {
		t.Error("an action waits for an unresolved one in another namespace")
	}
	if o.olderWaiting("other-namespace", []string{"busy-1"}, at) {
		t.Error("an action waits for an older one in another namespace")
	}

	syncArrived := o.resolved("sync", second, "ns", []string{"busy-1"}, at.Add(time.Millisecond))
	if again := o.resolved("sync", second, "ns", []string{"busy-1"}, now.Add(time.Second)); !again.Equal(syncArrived) ||
		!syncArrived.Equal(now) || !lockArrived.Before(at) || !lockArrived.After(syncArrived) {
		t.Fatalf("arrival times: sync %s (again %s), lock %s", syncArrived, again, lockArrived)
	}
	if !o.olderWaiting("lock", []string{"busy-1", "other"}, at) {
		t.Error("the newer action on busy-1 starts before the older one")
	}
	if o.olderWaiting("sync", []string{"busy-1"}, at) {
		t.Error("the older action waits for the newer one")
	}
	if o.olderWaiting("elsewhere", []string{"other-2"}, at) {
		t.Error("an action on another device waits once the older ones said which devices they target")
	}
	o.forget("sync")
	if o.olderWaiting("lock", []string{"busy-1", "other"}, at) {
		t.Error("the newer action still waits once the older one started")
	}
	// An older entry never cleared (its action was deleted while waiting)
	// holds others back only within the grace.
	o.resolved("deleted", second, "ns", []string{"d"}, now)
	o.resolved("late", second, "ns", []string{"d"}, now.Add(time.Second))
	if !o.olderWaiting("late", []string{"d"}, now.Add(2*time.Second)) {
		t.Error("within the grace, the entry that arrived first goes first")
	}
	if o.olderWaiting("late", []string{"d"}, now.Add(unsettledGrace)) {
		t.Error("past the grace, a stale entry still holds an action back")
	}

	// A restarted manager stamps what it lists in name order: an action
	// created a second earlier still goes first, as the gateway orders.
	var r startOrder
	r.arrive("a-newer", second.Add(time.Second), "ns", now)
	r.arrive("b-older", second, "ns", now.Add(time.Millisecond))
	r.resolved("a-newer", second.Add(time.Second), "ns", []string{"d"}, at)
	if !r.olderUnresolved("a-newer", second.Add(time.Second), "ns", at) {
		t.Error("the newer action does not wait for the older one listed after it")
	}
	r.resolved("b-older", second, "ns", []string{"d"}, at)
	if !r.olderWaiting("a-newer", []string{"d"}, at) || r.olderWaiting("b-older", []string{"d"}, at) {
		t.Error("a restart orders actions by arrival rather than by creation second")
	}
}
