package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// legacyConnection stands for the devices shown connected without naming a
// replica: written before replicas recorded themselves.
const legacyConnection = "-"

// connectionGateway is the replica a Device is shown connected through, or
// legacyConnection, or nothing for a disconnected one.
func connectionGateway(d *mdmv1alpha1.Device) (string, bool) {
	if c := d.Status.Connection; c != nil {
		return c.Gateway, true
	}
	if meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected) {
		return legacyConnection, true
	}
	return "", false
}

// connections finds the Devices shown connected, by replica.
type connections interface {
	// gateways are the replicas (and legacyConnection) devices name.
	gateways() []string
	// devices are those naming gateway, read-only.
	devices(ctx context.Context, gateway string) ([]*mdmv1alpha1.Device, error)
}

// indexConnectionGateway indexes the Device informer by connectionGateway,
// so that a sweep finds the replicas named and their devices without
// walking every Device.
const indexConnectionGateway = "kubemdm:connectionGateway"

// indexedConnections answers from the Device informer's own index.
type indexedConnections struct{ indexer toolscache.Indexer }

func (c indexedConnections) gateways() []string {
	return c.indexer.ListIndexFuncValues(indexConnectionGateway)
}

func (c indexedConnections) devices(_ context.Context, gateway string) ([]*mdmv1alpha1.Device, error) {
	objs, err := c.indexer.ByIndex(indexConnectionGateway, gateway)
	if err != nil {
		return nil, err
	}
	out := make([]*mdmv1alpha1.Device, 0, len(objs))
	for _, o := range objs {
		if d, ok := o.(*mdmv1alpha1.Device); ok {
			out = append(out, d)
		}
	}
	return out, nil
}

// indexConnections adds the index to the Device informer and returns it,
// or nil when the informer does not expose its indexer.
func indexConnections(informer interface {
	AddIndexers(toolscache.Indexers) error
}) (connections, error) {
	withIndexer, ok := informer.(interface{ GetIndexer() toolscache.Indexer })
	if !ok {
		return nil, nil
	}
	if err := informer.AddIndexers(toolscache.Indexers{indexConnectionGateway: func(o any) ([]string, error) {
		if d, ok := o.(*mdmv1alpha1.Device); ok {
			if g, ok := connectionGateway(d); ok {
				return []string{g}, nil
			}
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("indexing Devices by gateway replica: %w", err)
	}
	return indexedConnections{withIndexer.GetIndexer()}, nil
}

// listedConnections walks every Device in the reader: for a cache without
// an informer indexer.
type listedConnections struct{ reader client.Reader }

func (c listedConnections) gateways() []string {
	list := &mdmv1alpha1.DeviceList{}
	if err := c.reader.List(context.Background(), list, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var out []string
	for i := range list.Items {
		if g, ok := connectionGateway(&list.Items[i]); ok && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

func (c listedConnections) devices(ctx context.Context, gateway string) ([]*mdmv1alpha1.Device, error) {
	list := &mdmv1alpha1.DeviceList{}
	if err := c.reader.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing Devices: %w", err)
	}
	var out []*mdmv1alpha1.Device
	for i := range list.Items {
		if g, ok := connectionGateway(&list.Items[i]); ok && g == gateway {
			out = append(out, &list.Items[i])
		}
	}
	return out, nil
}

// Sweeps mark at most this many devices each, with this many writes in
// flight, so that a sweep never holds up the next for long.
const (
	sweepBatch   = 2000
	sweepWorkers = 8
)

// sweeper marks disconnected the devices still shown connected through a
// replica that is gone: one whose Lease lapsed or was released, or this
// replica's own previous process. Each gone replica's devices are swept by
// one live replica (the first by name); the writes are guarded, so two
// replicas that disagree for a moment write a device once.
type sweeper struct {
	lease    *replicaLease
	presence *presence
	conns    connections
	log      logr.Logger
	grace    time.Duration
	now      func() time.Time

	startedAt time.Time
	// seen is each Lease's renewTime as last read, and when this replica
	// first read that value: a Lease is live while it changes, measured on
	// this replica's clock, so that clock skew between replicas does not
	// matter.
	seen map[string]leaseSighting
	// goneSince is when a replica named on devices was first seen without
	// a live Lease.
	goneSince map[string]time.Time
}

type leaseSighting struct {
	renewed, at time.Time
	duration    time.Duration
}

func newSweeper(lease *replicaLease, p *presence, conns connections, log logr.Logger, grace time.Duration, now func() time.Time) *sweeper {
	return &sweeper{lease: lease, presence: p, conns: conns, log: log, grace: grace, now: now,
		startedAt: now(), seen: map[string]leaseSighting{}, goneSince: map[string]time.Time{}}
}

// run keeps the Lease and sweeps twice per grace until ctx ends. The Lease
// is renewed on its own, so that a long sweep never lets it lapse.
func (s *sweeper) run(ctx context.Context) {
	s.startedAt = s.now()
	var wg sync.WaitGroup
	wg.Go(func() { s.keepLease(ctx) })
	defer wg.Wait()
	every(ctx, s.grace/2, func() {
		if err := s.sweep(ctx); err != nil {
			s.log.Error(err, "Sweeping the devices of stopped gateway replicas; retrying")
		}
	})
}

// every calls fn once per interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fn()
		}
	}
}

// keepLease renews the Lease four times per duration. After a lapse the
// other replicas may have marked this one's devices disconnected, so every
// stream held is claimed again.
func (s *sweeper) keepLease(ctx context.Context) {
	renewed := time.Time{}
	renew := func() {
		now := s.now()
		if err := s.lease.renew(ctx, now); err != nil {
			if ctx.Err() == nil {
				s.log.Error(err, "Renewing the gateway replica's Lease; retrying")
			}
			return
		}
		if !renewed.IsZero() && now.Sub(renewed) >= s.lease.duration {
			s.log.Info("The gateway replica's Lease had lapsed; claiming its devices again")
			s.presence.reclaim()
		}
		renewed = now
	}
	renew()
	every(ctx, s.lease.duration/4, renew)
}

// live reads the Leases and returns the replicas whose Lease changed within
// its duration, as this replica saw it.
func (s *sweeper) live(ctx context.Context, now time.Time) (map[string]bool, error) {
	leases, err := s.lease.list(ctx)
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for replica, l := range leases {
		prev, ok := s.seen[replica]
		if !ok || !prev.renewed.Equal(l.renewed) {
			prev = leaseSighting{renewed: l.renewed, at: now, duration: l.duration}
			s.seen[replica] = prev
		}
		if now.Sub(prev.at) < prev.duration {
			live[replica] = true
		}
	}
	for replica, sighting := range s.seen {
		// A released Lease's last renewal is kept a while: it dates the
		// lastSeen of the devices it held.
		if _, ok := leases[replica]; !ok && now.Sub(sighting.at) > sighting.duration+10*s.grace {
			delete(s.seen, replica)
		}
	}
	live[s.presence.replica] = true
	return live, nil
}

// sweep marks the devices of gone replicas disconnected, once they had the
// grace to reconnect elsewhere.
func (s *sweeper) sweep(ctx context.Context) error {
	now := s.now()
	live, err := s.live(ctx, now)
	if err != nil {
		return err
	}
	first := slices.Sorted(func(yield func(string) bool) {
		for r := range live {
			if !yield(r) {
				return
			}
		}
	})[0]
	var due []*mdmv1alpha1.Device
	for _, replica := range s.conns.gateways() {
		if !s.due(replica, live, first, now) {
			continue
		}
		devices, err := s.conns.devices(ctx, replica)
		if err != nil {
			return err
		}
		for _, d := range devices {
			if len(due) == sweepBatch {
				break
			}
			if !s.presence.holds(client.ObjectKeyFromObject(d)) {
				due = append(due, d)
			}
		}
	}
	return s.markAll(ctx, due, now)
}

// due reports whether this replica sweeps the devices naming replica now.
func (s *sweeper) due(replica string, live map[string]bool, first string, now time.Time) bool {
	switch {
	case replica == s.presence.replica:
		// Left over from this replica's previous process, whose devices
		// get the grace from this one's start to come back.
		return now.Sub(s.startedAt) >= s.grace
	case live[replica]:
		delete(s.goneSince, replica)
		return false
	case first != s.presence.replica:
		return false
	}
	since, ok := s.goneSince[replica]
	if !ok {
		s.goneSince[replica] = now
		return false
	}
	return now.Sub(since) >= s.grace
}

func (s *sweeper) markAll(ctx context.Context, devices []*mdmv1alpha1.Device, now time.Time) error {
	var mu sync.Mutex
	var errs []error
	marked := 0
	inParallel(sweepWorkers, devices, func(d *mdmv1alpha1.Device) {
		err := s.mark(ctx, d, now)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			marked++
		case !errors.Is(err, errMoved) && !deviceGone(err):
			errs = append(errs, fmt.Errorf("device %s: %w", client.ObjectKeyFromObject(d), err))
		}
	})
	if marked > 0 {
		s.log.Info("Marked the devices of stopped gateway replicas disconnected", "devices", marked)
	}
	return errors.Join(errs...)
}

// mark writes a device of a gone replica disconnected, unless it moved or
// came back meanwhile. d is the cache's and only read.
func (s *sweeper) mark(ctx context.Context, d *mdmv1alpha1.Device, now time.Time) error {
	key := client.ObjectKeyFromObject(d)
	replica, _ := connectionGateway(d)
	check := func(d *mdmv1alpha1.Device) error {
		if g, ok := connectionGateway(d); !ok || g != replica || s.presence.holds(key) {
			return errMoved
		}
		return nil
	}
	message := fmt.Sprintf("Gateway replica %s stopped and the agent did not reconnect within %s", replica, s.grace)
	if replica == legacyConnection {
		message = fmt.Sprintf("No gateway replica holds the agent's stream; it did not reconnect within %s", s.grace)
	}
	err := s.presence.writeGuarded(ctx, key, d.UID, check, func(d *mdmv1alpha1.Device) map[string]any {
		var lastSeen time.Time
		if d.Status.LastSeen != nil {
			lastSeen = d.Status.LastSeen.Time
		}
		// The replica held the stream until at least its Lease's last
		// renewal this replica saw.
		if seen, ok := s.seen[replica]; ok && seen.renewed.After(lastSeen) {
			lastSeen = seen.renewed
		}
		return presenceStatus(nil, lastSeen, now, reasonGatewayGone, message)
	})
	if err == nil {
		s.log.V(1).Info("Marked a device of a stopped gateway replica disconnected", "device", key, "replica", replica)
	}
	return err
}
