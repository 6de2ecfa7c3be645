package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/conditions"
)

// AnnotationForceDelete on a Device being deleted releases it at once,
// without running its deletion policy.
const AnnotationForceDelete = mdmv1alpha1.AnnotationForceDelete

// DefaultDeletionTimeout is how long a deleted Device waits for its device
// to confirm the deletion policy before it is released anyway.
const DefaultDeletionTimeout = time.Hour

// LabelDeletionOf marks the DeviceAction that runs a Device's deletion policy.
const LabelDeletionOf = "mdm.kubemdm.io/deletion-of"

// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=deviceactions,verbs=create
// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=devices,verbs=retire;unenroll

// reconcileDelete runs the deletion policy: Retire or Unenroll through a
// DeviceAction, then lets go once the device confirmed, the action ended, the
// timeout passed or the force annotation was set. A device that never
// enrolled, or already left management, is released at once.
func (r *DeviceReconciler) reconcileDelete(ctx context.Context, d *mdmv1alpha1.Device) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(d, mdmv1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	policy := d.Spec.DeletionPolicy
	action := map[mdmv1alpha1.DeletionPolicy]mdmv1alpha1.ActionType{
		mdmv1alpha1.DeletionPolicyRetire: mdmv1alpha1.ActionRetire, "": mdmv1alpha1.ActionRetire,
		mdmv1alpha1.DeletionPolicyUnenroll: mdmv1alpha1.ActionUnenroll,
	}[policy]
	switch {
	case d.Annotations[AnnotationForceDelete] == "true":
		return r.release(d, "ForceDeleted", "Released at once by the "+AnnotationForceDelete+" annotation")
	case policy == mdmv1alpha1.DeletionPolicyOrphan:
		return r.release(d, "Orphaned", "Released without touching the device (deletionPolicy Orphan)")
	case d.Status.Phase == "" || d.Status.Phase == mdmv1alpha1.DeviceRegistered:
		return r.release(d, "NeverEnrolled", "Released at once: the device never enrolled")
	case !d.Status.Phase.Managed():
		return r.release(d, "Released", fmt.Sprintf("Released: the device is %s", d.Status.Phase))
	}

	timeout := r.DeletionTimeout
	if timeout <= 0 {
		timeout = DefaultDeletionTimeout
	}
	left := time.Until(d.DeletionTimestamp.Add(timeout))
	if left <= 0 {
		return r.release(d, "DeletionTimedOut", fmt.Sprintf("Released after %s without the device confirming %s", timeout, action))
	}

	a, err := r.ensureDeletionAction(ctx, d, action)
	if err != nil {
		return ctrl.Result{}, err
	}
	if a.Status.Phase.Finished() {
		// The device would have left management had it done it; whatever
		// the row says (ineligible, failed, expired) is reported and the
		// Device let go.
		msg := "unknown"
		for _, row := range a.Status.Devices {
			if row.Name == d.Name {
				msg = fmt.Sprintf("%s: %s", row.Phase, row.Message)
			}
		}
		return r.release(d, "DeletionPolicyEnded", fmt.Sprintf("Released: %s ended without the device leaving management (%s)", action, msg))
	}
	conditions.MarkReconciling(d, "Deleting", fmt.Sprintf("Waiting up to %s for the device to confirm %s (DeviceAction %s)",
		left.Round(time.Second), action, a.Name))
	return ctrl.Result{RequeueAfter: left}, nil
}

func (r *DeviceReconciler) release(d *mdmv1alpha1.Device, reason, message string) (ctrl.Result, error) {
	controllerutil.RemoveFinalizer(d, mdmv1alpha1.Finalizer)
	if r.Recorder != nil {
		r.Recorder.Eventf(d, nil, corev1.EventTypeNormal, reason, "Delete", "%s", message)
	}
	return ctrl.Result{}, nil
}

// ensureDeletionAction finds or creates the DeviceAction that runs the
// deletion policy. It is named after the Device's UID, so a re-created
// Device of the same name gets its own.
func (r *DeviceReconciler) ensureDeletionAction(ctx context.Context, d *mdmv1alpha1.Device, action mdmv1alpha1.ActionType) (*mdmv1alpha1.DeviceAction, error) {
	name := fmt.Sprintf("delete-%s-%s", strings.ToLower(string(action)), string(d.UID)[:8])
	a := &mdmv1alpha1.DeviceAction{}
	err := r.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: name}, a)
	if err == nil || !apierrors.IsNotFound(err) {
		return a, err
	}
	ttl := int32(24 * 60 * 60)
	a = &mdmv1alpha1.DeviceAction{
		ObjectMeta: metav1.ObjectMeta{Namespace: d.Namespace, Name: name,
			Labels: map[string]string{LabelDeletionOf: d.Name, mdmv1alpha1.LabelManagedBy: mdmv1alpha1.ManagedByValue}},
		Spec: mdmv1alpha1.DeviceActionSpec{Action: action, Devices: []string{d.Name}, TTLSecondsAfterFinished: &ttl},
	}
	if action.NeedsConfirm() {
		a.Spec.Confirm = string(action)
	}
	if err := r.Create(ctx, a); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating the %s DeviceAction for deleting Device %s: %w", action, d.Name, err)
	}
	return a, nil
}
