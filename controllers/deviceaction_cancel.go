package controllers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// DefaultCancelGrace is how long a deleted action waits for the devices
// that hold its command to answer the cancel before it ends their rows
// itself and goes.
const DefaultCancelGrace = 30 * time.Second

// canceling reports whether the action is to stop: spec.cancel, or deleted
// while it ran.
func canceling(a *mdmv1alpha1.DeviceAction) bool {
	return a.Spec.Cancel || !a.DeletionTimestamp.IsZero()
}

// cancelBeforeStart ends an action canceled before it resolved its targets:
// no device was asked anything.
func (r *DeviceActionReconciler) cancelBeforeStart(action *mdmv1alpha1.DeviceAction) {
	now := metav1.NewTime(r.now())
	action.Status.Phase, action.Status.CompletionTime = mdmv1alpha1.ActionCanceled, &now
	action.Status.Summary = &mdmv1alpha1.ActionSummary{}
	settleFinishedAction(action, mdmv1alpha1.ActionCanceled, string(action.Spec.Action)+" was canceled before it started; no device was asked anything")
	action.Status.ObservedGeneration = action.Generation
}

// cancelRows ends the rows of a canceled action that no device holds yet.
// A Delivered row waits for its device, which the gateway tells to drop the
// command: it answers Canceled if it had not started, or its result. A
// deleted action waits for them only CancelGrace, then ends them itself,
// since nothing would read a later answer. It returns when to look again,
// or the zero time.
func (r *DeviceActionReconciler) cancelRows(action *mdmv1alpha1.DeviceAction, now time.Time) time.Time {
	grace := r.CancelGrace
	if grace <= 0 {
		grace = DefaultCancelGrace
	}
	var giveUp time.Time
	if !action.DeletionTimestamp.IsZero() {
		giveUp = action.DeletionTimestamp.Add(grace)
	}
	at := metav1.NewTime(now)
	wait := false
	for i := range action.Status.Devices {
		row := &action.Status.Devices[i]
		switch {
		case row.Phase == mdmv1alpha1.CommandPending || row.Phase == mdmv1alpha1.CommandQueued:
			row.Phase, row.Code, row.Message, row.CompletedAt = mdmv1alpha1.CommandCanceled, mdmv1alpha1.CodeCanceled,
				"Canceled before it was delivered", &at
		case row.Phase != mdmv1alpha1.CommandDelivered:
		case !giveUp.IsZero() && !now.Before(giveUp):
			// Code 2 (Unknown), not 1: whether the device ran it is not
			// known, so nothing it did is undone.
			row.Phase, row.Code, row.Message, row.CompletedAt = mdmv1alpha1.CommandCanceled, mdmv1alpha1.CodeUnknown,
				"The DeviceAction was deleted before the device answered the cancel; the device may have run the command", &at
		default:
			wait = true
		}
	}
	if wait && !giveUp.IsZero() {
		return giveUp
	}
	return time.Time{}
}
