// Package lifecycle is the one owner of a Device's phase: a table of the
// transitions each event may make. Every writer of status.phase (the
// Device controller, enrollment, actions, the gateway's reports) asks Next
// and writes only what it answers, so no two places disagree about which
// phase may follow which.
package lifecycle

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/patch"
)

// Event is something that happened to a device.
type Event string

const (
	// Created: the Device object exists, pre-registered or just created.
	Created Event = "Created"
	// Enrolled: an agent enrolled as the device.
	Enrolled Event = "Enrolled"
	// WipeQueued: a Wipe was queued for the device.
	WipeQueued Event = "WipeQueued"
	// WipeDone: the device confirmed the wipe.
	WipeDone Event = "WipeDone"
	// WipeWithdrawn: the queued wipe failed, expired or was canceled.
	WipeWithdrawn Event = "WipeWithdrawn"
	// StateDisabled: the device confirmed it is disabled (a Disable action
	// succeeded, or it reported applying spec.state Disabled).
	StateDisabled Event = "StateDisabled"
	// StateActive: the device confirmed it is usable again.
	StateActive Event = "StateActive"
	// Retired, Unenrolled and Deprovisioned: the device confirmed it left
	// management that way.
	Retired       Event = "Retired"
	Unenrolled    Event = "Unenrolled"
	Deprovisioned Event = "Deprovisioned"
)

// settled is the phase a managed device rests in, by its spec.state.
const settled mdmv1alpha1.DevicePhase = "(Enrolled or Disabled, by spec.state)"

// leaving are the events that take a managed device out of management.
var leaving = map[Event]mdmv1alpha1.DevicePhase{
	Retired:       mdmv1alpha1.DeviceRetired,
	Unenrolled:    mdmv1alpha1.DeviceUnenrolled,
	Deprovisioned: mdmv1alpha1.DeviceDeprovisioned,
}

// transitions is the table: from a phase, the phase each event leads to.
// An event missing from a phase's row changes nothing. The phases that left
// management have no row: they are final (enrolling the hardware again
// needs a new Device).
var transitions = map[mdmv1alpha1.DevicePhase]map[Event]mdmv1alpha1.DevicePhase{
	"": {
		Created:  mdmv1alpha1.DeviceRegistered,
		Enrolled: mdmv1alpha1.DeviceEnrolled,
	},
	mdmv1alpha1.DeviceRegistered: {
		Enrolled: mdmv1alpha1.DeviceEnrolled,
	},
	mdmv1alpha1.DeviceEnrolled: with(leaving, map[Event]mdmv1alpha1.DevicePhase{
		WipeQueued:    mdmv1alpha1.DeviceWipePending,
		StateDisabled: mdmv1alpha1.DeviceDisabled,
	}),
	// A lost or stolen device can still be wiped, retired or taken out of
	// management: that is what one does with it.
	mdmv1alpha1.DeviceDisabled: with(leaving, map[Event]mdmv1alpha1.DevicePhase{
		WipeQueued:  mdmv1alpha1.DeviceWipePending,
		StateActive: mdmv1alpha1.DeviceEnrolled,
	}),
	mdmv1alpha1.DeviceWipePending: with(leaving, map[Event]mdmv1alpha1.DevicePhase{
		WipeDone:      mdmv1alpha1.DeviceWiped,
		WipeWithdrawn: settled,
	}),
}

func with(a, b map[Event]mdmv1alpha1.DevicePhase) map[Event]mdmv1alpha1.DevicePhase {
	out := make(map[Event]mdmv1alpha1.DevicePhase, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// Next is the phase the device moves to on event, and whether the event
// moves it at all. A withdrawn wipe returns the device to the phase its
// spec.state asks for: Disabled for a lost device, Enrolled otherwise.
func Next(d *mdmv1alpha1.Device, event Event) (mdmv1alpha1.DevicePhase, bool) {
	to, ok := transitions[d.Status.Phase][event]
	if !ok {
		return d.Status.Phase, false
	}
	if to == settled {
		to = mdmv1alpha1.DeviceEnrolled
		if d.Spec.State == mdmv1alpha1.DeviceStateDisabled {
			to = mdmv1alpha1.DeviceDisabled
		}
	}
	return to, to != d.Status.Phase
}

// Claimable reports whether an enrolling agent may take this Device: only
// one that never enrolled. One that was enrolled keeps its identity.
func Claimable(d *mdmv1alpha1.Device) bool {
	_, ok := transitions[d.Status.Phase][Enrolled]
	return ok
}

// FieldManager owns status.phase for every writer that moves it on its own.
const FieldManager = "kubemdm-lifecycle"

// Apply moves the Device's phase on event, by server-side apply of the phase
// alone, and reports whether it moved. The write is guarded by the
// resourceVersion d was read at: a move decided on a stale read fails with a
// conflict instead of overwriting a phase it did not see. d is updated to
// match.
func Apply(ctx context.Context, c client.Client, d *mdmv1alpha1.Device, event Event) (bool, error) {
	to, moves := Next(d, event)
	if !moves {
		return false, nil
	}
	if err := patch.ApplyDeviceStatusAt(ctx, c, d, FieldManager, map[string]any{"phase": string(to)}); err != nil {
		return false, fmt.Errorf("moving Device %s from %s to %s on %s: %w", d.Name, d.Status.Phase, to, event, err)
	}
	d.Status.Phase = to
	return true, nil
}

// ApplyFresh is Apply that, when the Device changed since d was read, reads
// it again from reader (the apiserver, not a cache that may still be
// behind) and decides again, a few times.
func ApplyFresh(ctx context.Context, c client.Client, reader client.Reader, d *mdmv1alpha1.Device, event Event) (bool, error) {
	for attempt := 0; ; attempt++ {
		moved, err := Apply(ctx, c, d, event)
		if !apierrors.IsConflict(err) || attempt == 2 {
			return moved, err
		}
		fresh := &mdmv1alpha1.Device{}
		if err := reader.Get(ctx, client.ObjectKeyFromObject(d), fresh); err != nil {
			return false, fmt.Errorf("reading Device %s again: %w", d.Name, err)
		}
		if fresh.UID != d.UID {
			return false, nil // another Device of the same name now
		}
		*d = *fresh
	}
}
