package gateway

import (
	"context"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// clock is a time the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// staleOnce answers the first Get of a Device with a copy taken earlier, as
// an informer cache that trails the apiserver does.
type staleOnce struct {
	client.Client
	mu    sync.Mutex
	stale *mdmv1alpha1.Device
}

func (s *staleOnce) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	s.mu.Lock()
	stale := s.stale
	s.stale = nil
	s.mu.Unlock()
	if d, ok := obj.(*mdmv1alpha1.Device); ok && stale != nil {
		stale.DeepCopyInto(d)
		return nil
	}
	return s.Client.Get(ctx, key, obj, opts...)
}

const testGrace = 10 * time.Second

func connection(t *testing.T, c client.Client, key types.NamespacedName) (*metav1.Condition, *mdmv1alpha1.DeviceConnection, string) {
	t.Helper()
	d := &mdmv1alpha1.Device{}
	if err := c.Get(context.Background(), key, d); err != nil {
		t.Fatal(err)
	}
	return meta.FindStatusCondition(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected), d.Status.Connection, d.ResourceVersion
}

func TestReplicas(t *testing.T) {
	c := startControlPlane(t)
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	replica := func(name string, c client.Client) *presence {
		return newPresence(c, c, (&errorLog{}).logger(), name, time.Hour, testGrace, clk.now)
	}
	sweeperOf := func(p *presence) *sweeper {
		lease := &replicaLease{client: c, reader: c, namespace: "default", replica: p.replica, duration: DefaultLeaseDuration}
		return newSweeper(lease, p, listedConnections{c}, (&errorLog{}).logger(), testGrace, clk.now)
	}

	t.Run("a stream that closes and reopens within the grace is never shown disconnected", func(t *testing.T) {
		a := replica("a", c)
		d := newTestDevice(t, c, "blip")
		key := client.ObjectKeyFromObject(d)
		a.connected(key, d.UID, false)
		a.flush(ctx)
		first, conn, _ := connection(t, c, key)
		if conn == nil || conn.Gateway != "a" {
			t.Fatalf("connection is %+v after the stream opened on a, want gateway a", conn)
		}
		a.disconnected(key, d.UID)
		clk.add(testGrace / 2)
		a.flush(ctx)
		if cond, _, _ := connection(t, c, key); cond.Status != metav1.ConditionTrue {
			t.Fatalf("Connected is %s within the grace", cond.Status)
		}
		a.connected(key, d.UID, false)
		clk.add(testGrace)
		a.flush(ctx)
		cond, conn, _ := connection(t, c, key)
		if cond.Status != metav1.ConditionTrue || conn == nil || conn.Gateway != "a" {
			t.Errorf("after coming back: Connected %s, connection %+v; want True on a", cond.Status, conn)
		}
		if !cond.LastTransitionTime.Equal(&first.LastTransitionTime) {
			t.Errorf("lastTransitionTime moved from %v to %v although Connected stayed True", first.LastTransitionTime, cond.LastTransitionTime)
		}
	})

	t.Run("a device that passed through another replica and came back within the grace is claimed back", func(t *testing.T) {
		a, b := replica("a", c), replica("b", c)
		d := newTestDevice(t, c, "round-trip")
		key := client.ObjectKeyFromObject(d)
		a.connected(key, d.UID, false)
		a.flush(ctx)
		a.disconnected(key, d.UID)
		b.connected(key, d.UID, false)
		b.flush(ctx)
		b.disconnected(key, d.UID)
		a.connected(key, d.UID, false)
		a.flush(ctx)
		clk.add(testGrace)
		b.flush(ctx)
		a.flush(ctx)
		cond, conn, _ := connection(t, c, key)
		if cond.Status != metav1.ConditionTrue || conn == nil || conn.Gateway != "a" {
			t.Errorf("back on a: Connected %s, connection %+v; want True on a", cond.Status, conn)
		}
	})

	t.Run("a streaming device costs no write while it holds its stream; a polling one one per interval", func(t *testing.T) {
		const interval = 5 * time.Minute
		p := newPresence(c, c, (&errorLog{}).logger(), "idle", interval, testGrace, clk.now)
		streaming, polling := newTestDevice(t, c, "streams"), newTestDevice(t, c, "polls")
		sk, pk := client.ObjectKeyFromObject(streaming), client.ObjectKeyFromObject(polling)
		p.connected(sk, streaming.UID, false)
		p.flush(ctx)
		_, _, streamingRV := connection(t, c, sk)
		writes, pollingRV := 0, ""
		for range 60 { // an hour of heartbeats, one a minute
			p.seen(sk, streaming.UID)
			p.seen(pk, polling.UID)
			p.flush(ctx)
			if _, _, rv := connection(t, c, pk); rv != pollingRV {
				writes, pollingRV = writes+1, rv
			}
			clk.add(time.Minute)
		}
		if _, _, rv := connection(t, c, sk); rv != streamingRV {
			t.Errorf("a device that held its stream for an hour was written (resourceVersion %s → %s)", streamingRV, rv)
		}
		if want := int(time.Hour / interval); writes < want || writes > want+1 {
			t.Errorf("a polling device was written %d times in an hour, want %d (once per %s)", writes, want, interval)
		}
	})

	t.Run("a closed stream is written disconnected after the grace", func(t *testing.T) {
		a := replica("a", c)
		d := newTestDevice(t, c, "leaves")
		key := client.ObjectKeyFromObject(d)
		a.connected(key, d.UID, false)
		a.flush(ctx)
		a.disconnected(key, d.UID)
		a.flush(ctx)
		if cond, _, _ := connection(t, c, key); cond.Status != metav1.ConditionTrue {
			t.Fatalf("Connected is %s within the grace, want True", cond.Status)
		}
		clk.add(testGrace)
		a.flush(ctx)
		cond, conn, _ := connection(t, c, key)
		if cond.Status != metav1.ConditionFalse || cond.Reason != reasonStreamClosed || conn != nil {
			t.Errorf("after the grace: Connected %s/%s, connection %+v; want False/StreamClosed and none", cond.Status, cond.Reason, conn)
		}
	})

	t.Run("the replica a device left never marks it disconnected, even from a stale read", func(t *testing.T) {
		d := newTestDevice(t, c, "mover")
		key := client.ObjectKeyFromObject(d)
		stale := &staleOnce{Client: c}
		a, b := replica("a", stale), replica("b", c)
		a.connected(key, d.UID, false)
		a.flush(ctx)
		// a's cache still shows the device on a when it writes the
		// disconnect; the resourceVersion guard must catch that.
		stale.stale = &mdmv1alpha1.Device{}
		if err := c.Get(ctx, key, stale.stale); err != nil {
			t.Fatal(err)
		}
		a.disconnected(key, d.UID)
		b.connected(key, d.UID, false)
		b.flush(ctx)
		clk.add(testGrace)
		a.flush(ctx)
		cond, conn, _ := connection(t, c, key)
		if cond.Status != metav1.ConditionTrue || conn == nil || conn.Gateway != "b" {
			t.Errorf("after moving to b: Connected %s, connection %+v; want True on b", cond.Status, conn)
		}
		if a.holds(key) {
			t.Error("a still holds the device it lost")
		}
	})

	t.Run("the devices of a replica without a Lease are marked after the grace", func(t *testing.T) {
		gone := replica("gone", c)
		d := newTestDevice(t, c, "orphan")
		key := client.ObjectKeyFromObject(d)
		gone.connected(key, d.UID, false)
		gone.flush(ctx)

		b := replica("b", c)
		s := sweeperOf(b)
		if err := s.lease.renew(ctx, clk.now()); err != nil {
			t.Fatal(err)
		}
		if err := s.sweep(ctx); err != nil {
			t.Fatal(err)
		}
		clk.add(testGrace - time.Second)
		if err := s.sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if cond, _, _ := connection(t, c, key); cond.Status != metav1.ConditionTrue {
			t.Fatalf("Connected is %s before the grace ended", cond.Status)
		}
		clk.add(time.Second)
		if err := s.sweep(ctx); err != nil {
			t.Fatal(err)
		}
		cond, conn, _ := connection(t, c, key)
		if cond.Status != metav1.ConditionFalse || cond.Reason != reasonGatewayGone || conn != nil {
			t.Errorf("after the grace: Connected %s/%s, connection %+v; want False/GatewayGone and none", cond.Status, cond.Reason, conn)
		}
	})

	t.Run("a Lease that stops changing counts as gone, a renewed one does not", func(t *testing.T) {
		live, lapsed := replica("live", c), replica("lapsed", c)
		onLive, onLapsed := newTestDevice(t, c, "on-live"), newTestDevice(t, c, "on-lapsed")
		live.connected(client.ObjectKeyFromObject(onLive), onLive.UID, false)
		live.flush(ctx)
		lapsed.connected(client.ObjectKeyFromObject(onLapsed), onLapsed.UID, false)
		lapsed.flush(ctx)
		lapsedLease := &replicaLease{client: c, reader: c, namespace: "default", replica: "lapsed", duration: DefaultLeaseDuration}
		lastRenewal := clk.now()
		if err := lapsedLease.renew(ctx, lastRenewal); err != nil {
			t.Fatal(err)
		}
		liveLease := &replicaLease{client: c, reader: c, namespace: "default", replica: "live", duration: DefaultLeaseDuration}
		s := sweeperOf(replica("b", c))
		// Both seen renewed, then only one renewed for a Lease duration
		// and a grace.
		for range int((DefaultLeaseDuration + 2*testGrace) / (testGrace / 2)) {
			if err := liveLease.renew(ctx, clk.now()); err != nil {
				t.Fatal(err)
			}
			if err := s.sweep(ctx); err != nil {
				t.Fatal(err)
			}
			if cond, _, _ := connection(t, c, client.ObjectKeyFromObject(onLapsed)); clk.now().Sub(lastRenewal) < DefaultLeaseDuration && cond.Status != metav1.ConditionTrue {
				t.Fatalf("a device of a replica whose Lease has not lapsed yet is %s", cond.Status)
			}
			clk.add(testGrace / 2)
		}
		if cond, _, _ := connection(t, c, client.ObjectKeyFromObject(onLive)); cond.Status != metav1.ConditionTrue {
			t.Errorf("a device of a replica renewing its Lease is %s, want True", cond.Status)
		}
		cond, _, _ := connection(t, c, client.ObjectKeyFromObject(onLapsed))
		if cond.Status != metav1.ConditionFalse {
			t.Errorf("a device of a replica whose Lease lapsed is %s, want False", cond.Status)
		}
		d := &mdmv1alpha1.Device{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(onLapsed), d); err != nil {
			t.Fatal(err)
		}
		if d.Status.LastSeen == nil || !d.Status.LastSeen.Time.Equal(lastRenewal.Truncate(time.Second)) {
			t.Errorf("lastSeen is %v, want the lapsed Lease's last renewal %v", d.Status.LastSeen, lastRenewal.Truncate(time.Second))
		}
	})

	t.Run("only the first live replica sweeps a gone one, and never a device it holds", func(t *testing.T) {
		gone := replica("gone2", c)
		held, other := newTestDevice(t, c, "held-here"), newTestDevice(t, c, "not-held")
		for _, d := range []*mdmv1alpha1.Device{held, other} {
			gone.connected(client.ObjectKeyFromObject(d), d.UID, false)
		}
		gone.flush(ctx)
		// "aa" is live and sorts first, so "zz" leaves the sweep to it.
		aaLease := &replicaLease{client: c, reader: c, namespace: "default", replica: "aa", duration: DefaultLeaseDuration}
		zz := replica("zz", c)
		zz.connected(client.ObjectKeyFromObject(held), held.UID, false)
		sz := sweeperOf(zz)
		aa := replica("aa", c)
		aa.connected(client.ObjectKeyFromObject(held), held.UID, false)
		sa := sweeperOf(aa)
		rounds := func(s *sweeper) {
			for range 4 {
				if err := aaLease.renew(ctx, clk.now()); err != nil {
					t.Fatal(err)
				}
				if err := s.sweep(ctx); err != nil {
					t.Fatal(err)
				}
				clk.add(testGrace / 2)
			}
		}
		rounds(sz)
		if cond, _, _ := connection(t, c, client.ObjectKeyFromObject(other)); cond.Status != metav1.ConditionTrue {
			t.Fatalf("a replica that is not first swept a gone replica's device: %s", cond.Status)
		}
		rounds(sa)
		if cond, _, _ := connection(t, c, client.ObjectKeyFromObject(other)); cond.Status != metav1.ConditionFalse {
			t.Errorf("the first live replica left a gone replica's device %s", cond.Status)
		}
		if cond, _, _ := connection(t, c, client.ObjectKeyFromObject(held)); cond.Status != metav1.ConditionTrue {
			t.Errorf("the sweeping replica marked a device it holds %s", cond.Status)
		}
	})

	t.Run("this replica's previous process: its devices get the grace from the start, unless they came back", func(t *testing.T) {
		before := replica("c", c)
		back, away := newTestDevice(t, c, "comes-back"), newTestDevice(t, c, "stays-away")
		for _, d := range []*mdmv1alpha1.Device{back, away} {
			before.connected(client.ObjectKeyFromObject(d), d.UID, false)
		}
		before.flush(ctx)

		after := replica("c", c)
		s := sweeperOf(after)
		if err := s.lease.renew(ctx, clk.now()); err != nil {
			t.Fatal(err)
		}
		after.connected(client.ObjectKeyFromObject(back), back.UID, false)
		if err := s.sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if cond, _, _ := connection(t, c, client.ObjectKeyFromObject(away)); cond.Status != metav1.ConditionTrue {
			t.Fatalf("a device of the previous process is %s at once, want True for the grace", cond.Status)
		}
		clk.add(testGrace)
		if err := s.sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if cond, _, _ := connection(t, c, client.ObjectKeyFromObject(away)); cond.Status != metav1.ConditionFalse {
			t.Errorf("a device that did not come back is %s after the grace, want False", cond.Status)
		}
		if cond, _, _ := connection(t, c, client.ObjectKeyFromObject(back)); cond.Status != metav1.ConditionTrue {
			t.Errorf("a device that came back is %s, want True", cond.Status)
		}
	})

	t.Run("release deletes the Lease", func(t *testing.T) {
		l := &replicaLease{client: c, reader: c, namespace: "default", replica: "leaving", duration: DefaultLeaseDuration}
		if err := l.renew(ctx, clk.now()); err != nil {
			t.Fatal(err)
		}
		if err := l.release(ctx); err != nil {
			t.Fatal(err)
		}
		lease := &coordinationv1.Lease{}
		if err := c.Get(ctx, l.key(), lease); err == nil {
			t.Errorf("the Lease is still there: %+v", lease.Spec)
		}
		if err := l.release(ctx); err != nil {
			t.Errorf("releasing twice: %v", err)
		}
	})
}
