package lifecycle

import (
	"testing"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func TestNext(t *testing.T) {
	const (
		none       = mdmv1alpha1.DevicePhase("")
		registered = mdmv1alpha1.DeviceRegistered
		enrolled   = mdmv1alpha1.DeviceEnrolled
		disabled   = mdmv1alpha1.DeviceDisabled
		pending    = mdmv1alpha1.DeviceWipePending
		wiped      = mdmv1alpha1.DeviceWiped
		retired    = mdmv1alpha1.DeviceRetired
	)
	for _, tc := range []struct {
		from  mdmv1alpha1.DevicePhase
		state mdmv1alpha1.DeviceState
		event Event
		to    mdmv1alpha1.DevicePhase
		moves bool
	}{
		{none, "", Created, registered, true},
		{none, "", Enrolled, enrolled, true},
		{registered, "", Enrolled, enrolled, true},
		{registered, "", Created, registered, false},
		{registered, "", WipeQueued, registered, false},
		{enrolled, "", Enrolled, enrolled, false},
		{enrolled, "", WipeQueued, pending, true},
		{enrolled, "", StateDisabled, disabled, true},
		{enrolled, "", StateActive, enrolled, false},
		{enrolled, "", Retired, retired, true},
		{enrolled, "", Unenrolled, mdmv1alpha1.DeviceUnenrolled, true},
		{enrolled, "", Deprovisioned, mdmv1alpha1.DeviceDeprovisioned, true},
		{disabled, mdmv1alpha1.DeviceStateDisabled, StateActive, enrolled, true},
		{disabled, mdmv1alpha1.DeviceStateDisabled, WipeQueued, pending, true},
		{disabled, mdmv1alpha1.DeviceStateDisabled, Retired, retired, true},
		{disabled, mdmv1alpha1.DeviceStateDisabled, StateDisabled, disabled, false},
		{pending, "", WipeDone, wiped, true},
		{pending, "", WipeWithdrawn, enrolled, true},
		// A lost device whose wipe was canceled is still lost.
		{pending, mdmv1alpha1.DeviceStateDisabled, WipeWithdrawn, disabled, true},
		{pending, "", StateDisabled, pending, false},
		{pending, "", Retired, retired, true},
		{wiped, "", Enrolled, wiped, false},
		{wiped, "", WipeWithdrawn, wiped, false},
		{retired, "", StateActive, retired, false},
		{enrolled, "", WipeDone, enrolled, false},
	} {
		d := &mdmv1alpha1.Device{Spec: mdmv1alpha1.DeviceSpec{State: tc.state}, Status: mdmv1alpha1.DeviceStatus{Phase: tc.from}}
		to, moves := Next(d, tc.event)
		if to != tc.to || moves != tc.moves {
			t.Errorf("%q --%s--> %q (moves %v), want %q (moves %v)", tc.from, tc.event, to, moves, tc.to, tc.moves)
		}
	}
}

// Every phase the schema allows either has a row or is a phase that left
// management, so no phase is forgotten by the table.
func TestEveryPhaseIsInTheTable(t *testing.T) {
	for _, p := range []mdmv1alpha1.DevicePhase{mdmv1alpha1.DeviceRegistered, mdmv1alpha1.DeviceEnrolled, mdmv1alpha1.DeviceDisabled,
		mdmv1alpha1.DeviceWipePending, mdmv1alpha1.DeviceWiped, mdmv1alpha1.DeviceRetired, mdmv1alpha1.DeviceUnenrolled, mdmv1alpha1.DeviceDeprovisioned} {
		if _, ok := transitions[p]; ok == !p.Managed() {
			t.Errorf("phase %s: in the table %v, managed %v", p, ok, p.Managed())
		}
	}
}

func TestClaimable(t *testing.T) {
	for phase, want := range map[mdmv1alpha1.DevicePhase]bool{
		"": true, mdmv1alpha1.DeviceRegistered: true, mdmv1alpha1.DeviceEnrolled: false, mdmv1alpha1.DeviceWiped: false,
	} {
		if got := Claimable(&mdmv1alpha1.Device{Status: mdmv1alpha1.DeviceStatus{Phase: phase}}); got != want {
			t.Errorf("Claimable(%q) = %v", phase, got)
		}
	}
}
