package gateway

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestExpectedConnections(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	a, b := types.NamespacedName{Namespace: "ns", Name: "a"}, types.NamespacedName{Namespace: "ns", Name: "b"}
	e := newExpected()
	if e.holds(a, now) {
		t.Fatal("a device never enrolled here is expected")
	}
	e.enrolled(a, now)
	if !e.holds(a, now.Add(expectWindow-time.Second)) {
		t.Error("a device enrolled in a storm is not expected within the window")
	}
	if e.holds(a, now.Add(expectWindow)) {
		t.Error("a device enrolled in a storm is still expected after the window")
	}
	// Entries of past windows go as new ones come.
	e.enrolled(b, now.Add(expectWindow))
	if n := e.len(); n != 1 {
		t.Errorf("%d entries after the window, want 1", n)
	}
}

func TestAdmissionFull(t *testing.T) {
	a := newAdmission(2)
	ctx := context.Background()
	var leaves []func()
	for range 2 {
		if a.full() {
			t.Fatal("full before every slot is taken")
		}
		leave, err := a.enter(ctx, time.Second, errEnrollmentsBusy)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, leave)
	}
	if !a.full() {
		t.Error("not full with every slot taken")
	}
	leaves[0]()
	if a.full() {
		t.Error("full with a slot free")
	}
}
