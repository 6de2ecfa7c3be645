package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func TestResultWriter(t *testing.T) {
	c := startControlPlane(t)
	ctx := context.Background()
	newQueued := func(t *testing.T, name string) *mdmv1alpha1.DeviceAction {
		t.Helper()
		a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionSync, Devices: []string{"d1"}}}
		if err := c.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		now := metav1.Now()
		a.Status.Phase = mdmv1alpha1.ActionRunning
		a.Status.Devices = []mdmv1alpha1.DeviceResult{{Name: "d1", Phase: mdmv1alpha1.CommandQueued, QueuedAt: &now}}
		if err := c.Status().Update(ctx, a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	phase := func(a *mdmv1alpha1.DeviceAction) mdmv1alpha1.DeviceCommandPhase {
		if err := c.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
			t.Fatal(err)
		}
		return a.Status.Devices[0].Phase
	}
	start := func(w *resultWriter) (stop func()) {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { w.run(runCtx); close(done) }()
		return func() { cancel(); <-done }
	}

	t.Run("a delivery whose write fails is written later, not dropped", func(t *testing.T) {
		failures := &atomic.Int32{}
		failures.Store(3)
		w := newResultWriter(failingStatus{c, failures}, c, (&errorLog{}).logger(), time.Now)
		defer start(w)()
		a := newQueued(t, "delivered-late")
		w.enqueue(client.ObjectKeyFromObject(a), rowUpdate{device: "d1", phase: mdmv1alpha1.CommandDelivered, at: time.Now()})
		deadline := time.Now().Add(10 * time.Second)
		for phase(a) != mdmv1alpha1.CommandDelivered {
			if time.Now().After(deadline) {
				t.Fatalf("the row is still %s after three failed writes: the delivery was dropped", phase(a))
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("a result whose write fails is reported to its waiter, and the next one lands", func(t *testing.T) {
		failures := &atomic.Int32{}
		failures.Store(1)
		w := newResultWriter(failingStatus{c, failures}, c, (&errorLog{}).logger(), time.Now)
		defer start(w)()
		a := newQueued(t, "result-retried")
		result := func() error {
			u := rowUpdate{device: "d1", phase: mdmv1alpha1.CommandSucceeded, at: time.Now(), done: make(chan error, 1)}
			w.enqueue(client.ObjectKeyFromObject(a), u)
			return <-u.done
		}
		if err := result(); err == nil {
			t.Fatal("the failed write was acknowledged")
		}
		if err := result(); err != nil {
			t.Fatalf("the agent's second try: %v", err)
		}
		if got := phase(a); got != mdmv1alpha1.CommandSucceeded {
			t.Fatalf("row is %s", got)
		}
	})

	t.Run("a result that arrives after its row ended otherwise is not acknowledged", func(t *testing.T) {
		w := newResultWriter(c, c, (&errorLog{}).logger(), time.Now)
		defer start(w)()
		a := newQueued(t, "expired-first")
		a.Status.Devices[0].Phase, a.Status.Devices[0].Code = mdmv1alpha1.CommandExpired, mdmv1alpha1.CodeDeadlineExceeded
		if err := c.Status().Update(ctx, a); err != nil {
			t.Fatal(err)
		}
		u := rowUpdate{device: "d1", phase: mdmv1alpha1.CommandSucceeded, at: time.Now(), done: make(chan error, 1)}
		w.enqueue(client.ObjectKeyFromObject(a), u)
		var overtaken *overtakenError
		if err := <-u.done; !errors.As(err, &overtaken) || overtaken.phase != mdmv1alpha1.CommandExpired {
			t.Fatalf("a late result was answered %v, want that the command already Expired", err)
		}
		if err := c.Delete(ctx, a); err != nil {
			t.Fatal(err)
		}
		u = rowUpdate{device: "d1", phase: mdmv1alpha1.CommandSucceeded, at: time.Now(), done: make(chan error, 1)}
		w.enqueue(client.ObjectKeyFromObject(a), u)
		if err := <-u.done; !errors.Is(err, errActionGone) {
			t.Fatalf("a result for a deleted action was answered %v", err)
		}
	})

	t.Run("the results of two actions are written at once, not one after the other", func(t *testing.T) {
		both := newBarrier(2)
		w := newResultWriter(barrierStatus{c, both}, c, (&errorLog{}).logger(), time.Now)
		actions := []*mdmv1alpha1.DeviceAction{newQueued(t, "parallel-a"), newQueued(t, "parallel-b")}
		waits := make([]chan error, len(actions))
		for i, a := range actions {
			waits[i] = make(chan error, 1)
			w.enqueue(client.ObjectKeyFromObject(a), rowUpdate{device: "d1", phase: mdmv1alpha1.CommandSucceeded, at: time.Now(), done: waits[i]})
		}
		// Both are pending before the writer starts: one round takes both.
		defer start(w)()
		for i, a := range actions {
			if err := <-waits[i]; err != nil {
				t.Fatalf("%s: %v", a.Name, err)
			}
			if got := phase(a); got != mdmv1alpha1.CommandSucceeded {
				t.Fatalf("%s: row is %s", a.Name, got)
			}
		}
	})

	t.Run("a stopping writer writes what it holds and refuses the rest without panicking", func(t *testing.T) {
		w := newResultWriter(c, c, (&errorLog{}).logger(), time.Now)
		a := newQueued(t, "at-stop")
		stop := start(w)
		// Stop before the updates are gathered: the final flush writes it.
		w.enqueue(client.ObjectKeyFromObject(a), rowUpdate{device: "d1", phase: mdmv1alpha1.CommandDelivered, at: time.Now()})
		stop()
		if got := phase(a); got != mdmv1alpha1.CommandDelivered {
			t.Fatalf("row is %s after the gateway stopped: the pending delivery was lost", got)
		}
		u := rowUpdate{device: "d1", phase: mdmv1alpha1.CommandSucceeded, at: time.Now(), done: make(chan error, 1)}
		w.enqueue(client.ObjectKeyFromObject(a), u)
		w.enqueue(client.ObjectKeyFromObject(a), rowUpdate{device: "d1", phase: mdmv1alpha1.CommandSucceeded, at: time.Now()})
		if err := <-u.done; err != errGatewayStopping {
			t.Fatalf("a result after stop: %v", err)
		}
	})
}

// barrier holds the first n status patches until all n have begun, and
// fails each that waits longer than a few seconds: patches made one after
// the other never meet there.
type barrier struct {
	n       int
	mu      sync.Mutex
	arrived int
	all     chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, all: make(chan struct{})} }

func (b *barrier) wait(ctx context.Context) error {
	b.mu.Lock()
	if b.arrived >= b.n {
		b.mu.Unlock()
		return nil
	}
	if b.arrived++; b.arrived == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(3 * time.Second):
		return errors.New("injected: no other patch began while this one waited")
	}
}

type barrierStatus struct {
	client.Client
	b *barrier
}

func (s barrierStatus) Status() client.SubResourceWriter {
	return barrierStatusWriter{s.Client.Status(), s.b}
}

type barrierStatusWriter struct {
	client.SubResourceWriter
	b *barrier
}

func (w barrierStatusWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	if err := w.b.wait(ctx); err != nil {
		return err
	}
	return w.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

// TestGathered: each DeviceAction's updates are written once none came for
// it for resultQuiet, or once its oldest has waited resultGatherMax, so a
// burst is one write and a lone update waits for no other action's burst.
func TestGathered(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	now := t0
	w := newResultWriter(nil, nil, logr.Discard(), func() time.Time { return now })
	lone := types.NamespacedName{Namespace: "default", Name: "lone"}
	burst := types.NamespacedName{Namespace: "default", Name: "burst"}
	at := func(d time.Duration) time.Time { now = t0.Add(d); return now }
	taken := func(d time.Duration) map[types.NamespacedName][]rowUpdate {
		t.Helper()
		batch, _ := w.take(at(d), false)
		return batch
	}

	// A burst that never pauses, one update every 4ms from the start.
	next := time.Duration(0)
	burstUntil := func(d time.Duration) {
		for ; next <= d; next += 4 * time.Millisecond {
			at(next)
			w.enqueue(burst, rowUpdate{device: fmt.Sprintf("d%03d", next/(4*time.Millisecond))})
		}
	}
	burstUntil(50 * time.Millisecond)
	at(50 * time.Millisecond)
	w.enqueue(lone, rowUpdate{device: "only"})
	if batch := taken(55 * time.Millisecond); len(batch) != 0 {
		t.Fatalf("written before any action went quiet: %v", batch)
	}
	burstUntil(50*time.Millisecond + resultQuiet)
	batch := taken(50*time.Millisecond + resultQuiet)
	if len(batch) != 1 || len(batch[lone]) != 1 {
		t.Fatalf("a lone update %s after it came: written %v, want it alone", resultQuiet, batch)
	}
	burstUntil(resultGatherMax - time.Millisecond)
	if batch := taken(resultGatherMax - time.Millisecond); len(batch) != 0 {
		t.Fatalf("a burst still arriving was written before its oldest waited %s: %v", resultGatherMax, batch)
	}
	batch, left := w.take(at(resultGatherMax), false)
	updates := batch[burst]
	if len(batch) != 1 || len(updates) != 63 || left {
		t.Fatalf("a burst whose oldest waited %s: written %d updates of %d actions, some left %t; want all 63 of it",
			resultGatherMax, len(updates), len(batch), left)
	}
	for i, u := range updates {
		if want := fmt.Sprintf("d%03d", i); u.device != want {
			t.Fatalf("update %d is %s, want %s: the order they came in is lost", i, u.device, want)
		}
	}

	// Updates a failed write gives back go before those that came meanwhile.
	at(time.Second)
	w.enqueue(burst, rowUpdate{device: "newer"})
	w.giveBack(burst, []rowUpdate{{device: "older"}})
	batch = taken(time.Second + resultQuiet)
	if got := batch[burst]; len(got) != 2 || got[0].device != "older" || got[1].device != "newer" {
		t.Fatalf("given back and newer updates written as %v", got)
	}
}
