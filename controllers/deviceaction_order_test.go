package controllers

import (
	"testing"
	"time"
)

// TestStartOrder: of two actions waiting on one device, the one seen
// first starts first, whichever looks again first; actions on other
// devices, and entries past the grace, hold nothing back.
func TestStartOrder(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	var o startOrder
	syncSeen := o.seen("sync", []string{"busy-1"}, now)
	lockSeen := o.seen("lock", []string{"busy-1", "other"}, now.Add(time.Millisecond))
	o.seen("elsewhere", []string{"other-2"}, now.Add(2*time.Millisecond))
	if again := o.seen("sync", []string{"busy-1"}, now.Add(time.Second)); !again.Equal(syncSeen) || !lockSeen.After(syncSeen) {
		t.Fatalf("seen times: sync %s (again %s), lock %s", syncSeen, again, lockSeen)
	}
	at := now.Add(300 * time.Millisecond)
	if !o.olderWaiting("lock", []string{"busy-1", "other"}, at) {
		t.Error("the newer action on busy-1 starts before the older one")
	}
	if o.olderWaiting("sync", []string{"busy-1"}, at) {
		t.Error("the older action waits for the newer one")
	}
	if o.olderWaiting("elsewhere", []string{"other-2"}, at) {
		t.Error("an action on another device waits")
	}
	o.started("sync")
	if o.olderWaiting("lock", []string{"busy-1", "other"}, at) {
		t.Error("the newer action still waits once the older one started")
	}
	// An older entry never cleared (its action was deleted while waiting)
	// holds others back only within the grace.
	o.seen("deleted", []string{"d"}, now)
	o.seen("late", []string{"d"}, now.Add(time.Second))
	if !o.olderWaiting("late", []string{"d"}, now.Add(2*time.Second)) {
		t.Error("within the grace, the entry seen first goes first")
	}
	if o.olderWaiting("late", []string{"d"}, now.Add(unsettledGrace)) {
		t.Error("past the grace, a stale entry still holds an action back")
	}
}
