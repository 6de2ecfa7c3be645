package scale

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// presenceOffEvery is which devices the presence phase switches off: one
// in presenceOffEvery.
const presenceOffEvery = 10

// presence checks that a reconnect loses no connected or disconnected
// transition. It kills the manager again (`kill -9`) and, while it is
// down, switches off one device in ten; then the restarted gateway must
// show the others connected, without a write, and exactly those switched
// off disconnected, once its handover grace has passed: none missed, and
// no device that came back shown disconnected, even for a moment.
func (h *Harness) presence(ctx context.Context, f *fleet, r *Results) error {
	n := len(f.devices.Agents)
	connected := func(d *mdmv1alpha1.Device) bool {
		return meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected)
	}
	disconnected := func(d *mdmv1alpha1.Device) bool {
		return meta.IsStatusConditionFalse(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected)
	}
	c, err := h.countDevices(ctx, f.ns, connected, deviceStage{name: "disconnected", when: disconnected})
	if err != nil {
		return err
	}
	defer c.stop()
	if _, err := c.await(ctx, n, 2*time.Minute); err != nil {
		return fmt.Errorf("shown connected after the reconnect: %w", err)
	}
	before := f.sessions()
	h.manager.Kill()
	m, err := h.mark(ctx)
	if err != nil {
		return err
	}
	off := map[string]bool{}
	for i := 0; i < n; i += presenceOffEvery {
		f.devices.Stop(i)
		off[f.devices.Agents[i].Identity().Name] = true
	}
	began := time.Now()
	if err := h.startManager(ctx); err != nil {
		return err
	}
	// Every Device ever shown disconnected since, by name: a device that
	// came back must never be among them.
	everOff := map[string]bool{}
	watchOff := func() (switchedOff int) {
		for name := range c.matching("disconnected") {
			everOff[name] = true
		}
		for name := range off {
			if everOff[name] {
				switchedOff++
			}
		}
		return switchedOff
	}
	err = poll(ctx, 2*time.Minute, func() (bool, error) {
		return watchOff() >= len(off) && f.reconnected(before) >= n-len(off), nil
	})
	r.Presence.Time = time.Since(began)
	if err != nil {
		return fmt.Errorf("%d of %d switched-off devices shown disconnected, %d of %d others reconnected: %w",
			watchOff(), len(off), f.reconnected(before), n-len(off), err)
	}
	// A device wrongly shown disconnected by the sweep of the previous
	// process's streams would show by now; a few seconds more for one
	// written late.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		watchOff()
	}
	r.Presence.Devices, r.Presence.Off = n, len(off)
	for name := range everOff {
		if off[name] {
			r.Presence.ShownOff++
		} else {
			r.Presence.WronglyOff++
		}
	}
	for name := range c.matching("") {
		if !off[name] {
			r.Presence.ShownOn++
		}
	}
	if r.Presence.Writes, err = h.managerWrites(ctx, m); err != nil {
		return err
	}
	h.logf("Presence after a second kill -9 with %d of %d devices switched off: %d shown disconnected in %s, %d others shown disconnected, %d shown connected; writes %s",
		len(off), n, r.Presence.ShownOff, r.Presence.Time.Round(time.Millisecond), r.Presence.WronglyOff, r.Presence.ShownOn, r.Presence.Writes)
	return nil
}

// lostTransitions counts what the presence phase found shown wrongly: a
// switched-off device not shown disconnected, a device that came back
// shown disconnected at any moment, and one not shown connected at the end.
func (r *Results) lostTransitions() int {
	p := r.Presence
	return (p.Off - p.ShownOff) + p.WronglyOff + (p.Devices - p.Off - p.ShownOn)
}
