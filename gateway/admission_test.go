package gateway

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
)

func TestAdmissionBoundsAndQueues(t *testing.T) {
	a := newAdmission(2)
	ctx := context.Background()
	first, err := a.enter(ctx, time.Second, errEnrollmentsBusy)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.enter(ctx, time.Second, errEnrollmentsBusy); err != nil {
		t.Fatal(err)
	}

	// A third waits its turn, and gets the slot the first frees.
	entered := make(chan error, 1)
	go func() {
		_, err := a.enter(ctx, time.Minute, errEnrollmentsBusy) // and holds the slot
		entered <- err
	}()
	select {
	case err := <-entered:
		t.Fatalf("a third enrollment ran beside two with two slots (err %v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	first()
	if err := <-entered; err != nil {
		t.Fatalf("the waiting enrollment did not get the freed slot: %v", err)
	}

	// One that waits too long is told to come back; one whose call ends
	// stops waiting.
	if _, err := a.enter(ctx, 20*time.Millisecond, errEnrollmentsBusy); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("after its wait: %v, want unavailable", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.enter(canceled, time.Minute, errEnrollmentsBusy); connect.CodeOf(err) != connect.CodeCanceled {
		t.Errorf("with its call ended: %v, want canceled", err)
	}
}
