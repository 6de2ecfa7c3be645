package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/index"
	"github.com/kubemdm/kubemdm/internal/lifecycle"
	"github.com/kubemdm/kubemdm/internal/patch"
)

// Field managers of what actions change in a Device's status. Each applies
// its whole set every time, so one never removes another's field.
const (
	actionUnenrollmentManager = "kubemdm-action-unenrollment"
)

// onQueue is what queueing an action does to the device at once: a wipe is
// pending, and an unenroll is pending with its request date (also for an
// offline device, as the source API says).
func (r *DeviceActionReconciler) onQueue(ctx context.Context, action mdmv1alpha1.ActionType, d *mdmv1alpha1.Device, now time.Time) error {
	if action == mdmv1alpha1.ActionUnenroll && d.Status.Unenrollment != nil && d.Status.Unenrollment.Phase == mdmv1alpha1.UnenrollmentPending {
		return nil // already pending: a retry keeps the first request date
	}
	switch action {
	case mdmv1alpha1.ActionWipe:
		return r.setDevicePhase(ctx, d, lifecycle.WipeQueued)
	case mdmv1alpha1.ActionUnenroll:
		return r.setUnenrollment(ctx, d, mdmv1alpha1.UnenrollmentPending, &now, nil)
	}
	return nil
}

// changesDeviceOnQueue reports whether queueing the action changes its
// devices (see onQueue and applySpec), so that its rows are recorded first.
func changesDeviceOnQueue(a *mdmv1alpha1.DeviceAction) bool {
	field, _ := specChange(a)
	return field != "" || a.Spec.Action == mdmv1alpha1.ActionWipe || a.Spec.Action == mdmv1alpha1.ActionUnenroll
}

// onFinish is what a finished row does to its device. A row that ran
// records the device's new phase; one canceled or expired undoes what
// queueing did. Each effect applies only while the device still shows the
// state the action left it in, so reconciling again, or later, changes
// nothing.
func (r *DeviceActionReconciler) onFinish(ctx context.Context, action *mdmv1alpha1.DeviceAction, row mdmv1alpha1.DeviceResult, d *mdmv1alpha1.Device) error {
	ok := row.Phase == mdmv1alpha1.CommandSucceeded
	// Withdrawn: the device never ran it, so what queueing did is undone.
	// That is known when it never received it, or said it dropped it; a
	// delivered command that expired, or whose cancel went unanswered, may
	// have run, and nothing is undone on a guess.
	withdrawn := (row.Phase == mdmv1alpha1.CommandCanceled || row.Phase == mdmv1alpha1.CommandExpired) &&
		(row.DeliveredAt == nil || row.Code == mdmv1alpha1.CodeCanceled)
	at := time.Now()
	if row.CompletedAt != nil {
		at = row.CompletedAt.Time
	}
	if withdrawn {
		// Another action still on its way to the device makes a change of
		// the same kind: the device is to end as that one says, not as it
		// was before this one.
		other, err := r.newestOpenChange(ctx, action, d)
		if err != nil {
			return err
		}
		if other != nil {
			return r.handOver(ctx, action, other, d)
		}
		if err := r.revertSpec(ctx, action, d); err != nil {
			return err
		}
	}
	switch action.Spec.Action {
	case mdmv1alpha1.ActionWipe:
		switch {
		case ok:
			return r.setDevicePhase(ctx, d, lifecycle.WipeDone)
		case withdrawn || row.Phase == mdmv1alpha1.CommandFailed:
			return r.setDevicePhase(ctx, d, lifecycle.WipeWithdrawn)
		}
		return nil // it may have wiped: the device stays WipePending
	case mdmv1alpha1.ActionUnenroll:
		u := d.Status.Unenrollment
		if u == nil || u.Phase != mdmv1alpha1.UnenrollmentPending {
			return nil
		}
		switch {
		case ok:
			// The phase first: its write is guarded by the version read.
			if err := r.setDevicePhase(ctx, d, lifecycle.Unenrolled); err != nil {
				return err
			}
			return r.setUnenrollment(ctx, d, mdmv1alpha1.UnenrollmentSuccess, timeOf(u.RequestDate), &at)
		case withdrawn && row.Phase == mdmv1alpha1.CommandCanceled:
			// Never run on the device: as if it had not been requested.
			return r.setUnenrollment(ctx, d, mdmv1alpha1.UnenrollmentNone, nil, nil)
		}
		return r.setUnenrollment(ctx, d, mdmv1alpha1.UnenrollmentFailed, timeOf(u.RequestDate), &at)
	}
	if !ok {
		return nil
	}
	switch action.Spec.Action {
	case mdmv1alpha1.ActionRetire:
		return r.setDevicePhase(ctx, d, lifecycle.Retired)
	case mdmv1alpha1.ActionDeprovision:
		return r.setDevicePhase(ctx, d, lifecycle.Deprovisioned)
	case mdmv1alpha1.ActionDisable:
		return r.setDevicePhase(ctx, d, lifecycle.StateDisabled)
	case mdmv1alpha1.ActionReenable:
		return r.setDevicePhase(ctx, d, lifecycle.StateActive)
	case mdmv1alpha1.ActionSyncCompliance:
		// The device re-sent its facts; have them evaluated now rather than
		// at the next change.
		if c := d.Status.Compliance; c == nil || c.LastEvaluated == nil || c.LastEvaluated.Time.Before(at.Truncate(time.Second)) {
			return r.requestCompliance(ctx, d, at)
		}
	}
	return nil
}

// newestOpenChange is the newest other action with open rows for the device
// that makes a change of the same kind as this one (the same spec field, or
// both a wipe or an unenroll), or nil.
func (r *DeviceActionReconciler) newestOpenChange(ctx context.Context, action *mdmv1alpha1.DeviceAction, d *mdmv1alpha1.Device) (*mdmv1alpha1.DeviceAction, error) {
	list := &mdmv1alpha1.DeviceActionList{}
	if err := r.List(ctx, list, client.InNamespace(d.Namespace), client.MatchingFields{index.OpenCommands: d.Name}); err != nil {
		return nil, fmt.Errorf("listing the DeviceActions of Device %s: %w", d.Name, err)
	}
	field, _ := specChange(action)
	var newest *mdmv1alpha1.DeviceAction
	for i := range list.Items {
		other := &list.Items[i]
		if other.UID == action.UID || other.Spec.Cancel || !other.DeletionTimestamp.IsZero() {
			continue
		}
		otherField, _ := specChange(other)
		if other.Spec.Action != action.Spec.Action && (field == "" || otherField != field) {
			continue
		}
		if newest == nil || mdmv1alpha1.CompareQueueOrder(other, newest) > 0 {
			newest = other
		}
	}
	return newest, nil
}

// handOver leaves a withdrawn change to the newer action that makes one of
// the same kind: a phase or pending unenrollment stays, and a spec field
// this action set takes the newer action's value.
func (r *DeviceActionReconciler) handOver(ctx context.Context, action, newer *mdmv1alpha1.DeviceAction, d *mdmv1alpha1.Device) error {
	field, value := specChange(action)
	if field == "" {
		return nil
	}
	if owner, err := r.foreignOwner(ctx, d, field); err != nil || owner != "" {
		return client.IgnoreNotFound(err)
	}
	_, want := specChange(newer)
	current, err := specFieldOf(d, field)
	if err != nil {
		return err
	}
	mine, err := jsonValue(value)
	if err != nil || !equality.Semantic.DeepEqual(current, mine) {
		return err // not this action's value any more
	}
	if theirs, err := jsonValue(want); err != nil || equality.Semantic.DeepEqual(theirs, mine) {
		return err
	}
	if err := r.applySpecField(ctx, d, field, want); err != nil {
		return fmt.Errorf("handing spec.%s of Device %s to DeviceAction %s: %w", field, d.Name, newer.Name, err)
	}
	return nil
}

// requestCompliance asks the Device controller, the one writer of
// status.compliance, to evaluate the device again as of at.
func (r *DeviceActionReconciler) requestCompliance(ctx context.Context, d *mdmv1alpha1.Device, at time.Time) error {
	stamp := at.UTC().Format(time.RFC3339)
	if current, err := time.Parse(time.RFC3339, d.Annotations[mdmv1alpha1.AnnotationComplianceRequested]); err == nil && !current.Before(at.Truncate(time.Second)) {
		return nil
	}
	before := d.DeepCopy()
	metav1.SetMetaDataAnnotation(&d.ObjectMeta, mdmv1alpha1.AnnotationComplianceRequested, stamp)
	if err := r.Patch(ctx, d, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("requesting a compliance evaluation of Device %s: %w", d.Name, err)
	}
	return nil
}

func timeOf(t *metav1.Time) *time.Time {
	if t == nil {
		return nil
	}
	return &t.Time
}

// setDevicePhase moves the device's phase through the lifecycle table.
func (r *DeviceActionReconciler) setDevicePhase(ctx context.Context, d *mdmv1alpha1.Device, event lifecycle.Event) error {
	_, err := lifecycle.Apply(ctx, r.Client, d, event)
	return err
}

func (r *DeviceActionReconciler) setUnenrollment(ctx context.Context, d *mdmv1alpha1.Device, phase mdmv1alpha1.UnenrollmentPhase, requested, executed *time.Time) error {
	u := map[string]any{"phase": string(phase), "requestDate": nil, "executionDate": nil}
	if requested != nil {
		u["requestDate"] = metav1.NewTime(*requested).ToUnstructured()
	}
	if executed != nil {
		u["executionDate"] = metav1.NewTime(*executed).ToUnstructured()
	}
	if err := patch.ApplyDeviceStatus(ctx, r.Client, client.ObjectKeyFromObject(d), d.UID, actionUnenrollmentManager, map[string]any{"unenrollment": u}); err != nil {
		return fmt.Errorf("setting Device %s unenrollment %s: %w", d.Name, phase, err)
	}
	d.Status.Unenrollment = &mdmv1alpha1.UnenrollmentStatus{Phase: phase}
	return nil
}
