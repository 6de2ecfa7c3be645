package scale

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// presenceOffEvery is which devices the presence phase switches off: one
// in presenceOffEvery.
const presenceOffEvery = 10

// presenceSettle is how long the presence phase keeps watching once the
// devices switched off are shown disconnected: the sweep that marks them
// is the one that would mark a device that came back, so a wrong mark
// lands with theirs; this is for one written a moment late.
const presenceSettle = 3 * time.Second

// presence checks that a reconnect loses no connected or disconnected
// transition. It kills the manager again (`kill -9`) and, while it is
// down, switches off one device in ten; then the restarted gateway must
// show the others connected throughout, and exactly those switched off
// disconnected once its handover grace has passed.
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
	// Conditions keep their transition time to the second.
	killed := time.Now().Truncate(time.Second)
	h.manager.Kill()
	m, err := h.mark(ctx)
	if err != nil {
		return err
	}
	off := map[string]bool{}
	for i := 0; i < n; i += presenceOffEvery {
		if !f.devices.Stop(i) {
			return fmt.Errorf("agent %d is not running", i)
		}
		off[f.devices.Agents[i].Identity().Name] = true
	}
	began := time.Now()
	if err := h.startManager(ctx); err != nil {
		return err
	}
	// Every Device seen disconnected since, by name. Sampling can miss a
	// moment's disconnect; the transition times checked below cannot.
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
	settled := time.Now().Add(presenceSettle)
	if err := poll(ctx, presenceSettle+time.Second, func() (bool, error) {
		watchOff()
		return time.Now().After(settled), nil
	}); err != nil {
		return err
	}
	// The Devices as stored: a device that came back must be connected
	// with the transition time it had before the kill, which a disconnect
	// and a reconnect, however quick, would have moved.
	devices := &mdmv1alpha1.DeviceList{}
	if err := h.client.List(ctx, devices, client.InNamespace(f.ns)); err != nil {
		return err
	}
	stored := map[string]*mdmv1alpha1.Device{}
	for i := range devices.Items {
		stored[devices.Items[i].Name] = &devices.Items[i]
	}
	p := &r.Presence
	p.Devices, p.Off = n, len(off)
	for _, a := range f.devices.Agents {
		name := a.Identity().Name
		d := stored[name]
		switch {
		case d == nil:
		case off[name]:
			if disconnected(d) {
				p.ShownOff++
			}
		case everOff[name]:
			p.WronglyOff++
		default:
			if c := meta.FindStatusCondition(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected); c != nil &&
				c.Status == "True" && c.LastTransitionTime.Time.Before(killed) {
				p.ShownOn++
			}
		}
	}
	if p.Writes, err = h.managerWrites(ctx, m); err != nil {
		return err
	}
	h.logf("Presence after a second kill -9 with %d of %d devices switched off: %d shown disconnected in %s, %d others shown disconnected, %d connected throughout; writes %s",
		p.Off, n, p.ShownOff, p.Time.Round(time.Millisecond), p.WronglyOff, p.ShownOn, p.Writes)
	return nil
}

// lostTransitions counts what the presence phase found shown wrongly: a
// switched-off device not shown disconnected, a device that came back
// seen disconnected, and one not connected throughout (each device that
// came back is one or the other, or right).
func (r *Results) lostTransitions() int {
	p := r.Presence
	return max(p.Off-p.ShownOff, 0) + p.WronglyOff + max(p.Devices-p.Off-p.WronglyOff-p.ShownOn, 0)
}
