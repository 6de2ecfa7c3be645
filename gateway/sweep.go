package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// sweeper renews this replica's Lease and marks disconnected the devices
// still shown connected through a replica that is gone: one whose Lease
// lapsed or was released, or this replica's own previous process. Every
// replica sweeps; the writes are guarded, so two sweeping the same device
// write it once.
type sweeper struct {
	lease    *replicaLease
	presence *presence
	cache    client.Reader
	log      logr.Logger
	grace    time.Duration
	now      func() time.Time

	startedAt time.Time
	// goneSince is when a replica named on devices was first seen without
	// a live Lease; lastRenewed is its Lease's last renewal seen alive.
	goneSince   map[string]time.Time
	lastRenewed map[string]time.Time
}

func newSweeper(lease *replicaLease, p *presence, cache client.Reader, log logr.Logger, grace time.Duration, now func() time.Time) *sweeper {
	return &sweeper{lease: lease, presence: p, cache: cache, log: log, grace: grace, now: now,
		startedAt: now(), goneSince: map[string]time.Time{}, lastRenewed: map[string]time.Time{}}
}

// run renews the Lease four times per duration and sweeps twice per grace
// until ctx ends.
func (s *sweeper) run(ctx context.Context) {
	if err := s.lease.renew(ctx, s.now()); err != nil {
		s.log.Error(err, "Holding the gateway replica's Lease; retrying")
	}
	renew := time.NewTicker(s.lease.duration / 4)
	defer renew.Stop()
	sweep := time.NewTicker(s.grace / 2)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-renew.C:
			if err := s.lease.renew(ctx, s.now()); err != nil {
				s.log.Error(err, "Renewing the gateway replica's Lease; retrying")
			}
		case <-sweep.C:
			if err := s.sweep(ctx); err != nil {
				s.log.Error(err, "Sweeping the devices of stopped gateway replicas; retrying")
			}
		}
	}
}

// sweep marks the devices of gone replicas disconnected, once they had the
// grace to reconnect elsewhere.
func (s *sweeper) sweep(ctx context.Context) error {
	now := s.now()
	live, err := s.lease.liveReplicas(ctx, now)
	if err != nil {
		return err
	}
	for replica, renewed := range live {
		s.lastRenewed[replica] = renewed
		delete(s.goneSince, replica)
	}
	devices := &mdmv1alpha1.DeviceList{}
	// Read-only walk over the cache: no copy of every Device.
	if err := s.cache.List(ctx, devices, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing Devices: %w", err)
	}
	var errs []error
	marked := 0
	for i := range devices.Items {
		d := &devices.Items[i]
		conn := d.Status.Connection
		if conn == nil || !s.gone(conn.Gateway, client.ObjectKeyFromObject(d), live, now) {
			continue
		}
		switch err := s.mark(ctx, d.DeepCopy(), conn.Gateway, now); {
		case err == nil:
			marked++
		case !errors.Is(err, errMoved) && !deviceGone(err):
			errs = append(errs, fmt.Errorf("device %s: %w", client.ObjectKeyFromObject(d), err))
		}
	}
	if marked > 0 {
		s.log.Info("Marked the devices of stopped gateway replicas disconnected", "devices", marked)
	}
	return errors.Join(errs...)
}

// gone reports whether the replica a device names has been gone for the
// grace.
func (s *sweeper) gone(replica string, key client.ObjectKey, live map[string]time.Time, now time.Time) bool {
	if replica == s.presence.replica {
		// Shown connected here but not held: left over from this
		// replica's previous process, whose devices get the grace from
		// this one's start to come back.
		return now.Sub(s.startedAt) >= s.grace && !s.presence.holds(key)
	}
	if _, ok := live[replica]; ok {
		return false
	}
	since, ok := s.goneSince[replica]
	if !ok {
		s.goneSince[replica] = now
		return false
	}
	return now.Sub(since) >= s.grace
}

// mark writes a device of a gone replica disconnected, unless it moved or
// (on this replica) came back meanwhile.
func (s *sweeper) mark(ctx context.Context, d *mdmv1alpha1.Device, replica string, now time.Time) error {
	key := client.ObjectKeyFromObject(d)
	check := func(d *mdmv1alpha1.Device) error {
		c := d.Status.Connection
		if c == nil || c.Gateway != replica || (replica == s.presence.replica && s.presence.holds(key)) {
			return errMoved
		}
		return nil
	}
	err := s.presence.writeDisconnected(ctx, key, d.UID, check, func(d *mdmv1alpha1.Device) map[string]any {
		// The replica held the stream until at least its last renewal.
		var lastSeen time.Time
		if d.Status.LastSeen != nil {
			lastSeen = d.Status.LastSeen.Time
		}
		if renewed := s.lastRenewed[replica]; replica != s.presence.replica && renewed.After(lastSeen) {
			lastSeen = renewed
		}
		return presenceStatus(nil, lastSeen, now, reasonGatewayGone,
			fmt.Sprintf("Gateway replica %s stopped and the agent did not reconnect within %s", replica, s.grace))
	})
	if err == nil {
		s.log.V(1).Info("Marked a device of a stopped gateway replica disconnected", "device", key, "replica", replica)
	}
	return err
}
