package controllers

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// indexEnrolledWith finds Devices by the token they enrolled with.
const indexEnrolledWith = "status.enrollmentToken"

// countInterval is how often at most a token's enrollment count is
// written: a fleet enrolling at once changes it thousands of times a
// minute, and one write every ten seconds says as much.
const countInterval = 10 * time.Second

func enrolledWith(o client.Object) []string {
	if t := o.(*mdmv1alpha1.Device).Status.EnrollmentToken; t != "" {
		return []string{t}
	}
	return nil
}

// enrolledDevices lists the Devices that enrolled with token, read-only.
func (r *EnrollmentTokenReconciler) enrolledDevices(ctx context.Context, token *mdmv1alpha1.EnrollmentToken) ([]mdmv1alpha1.Device, error) {
	devices := &mdmv1alpha1.DeviceList{}
	if err := r.List(ctx, devices, client.InNamespace(token.Namespace), client.MatchingFields{indexEnrolledWith: token.Name},
		client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing the Devices enrolled with the token: %w", err)
	}
	out := devices.Items[:0]
	for _, d := range devices.Items {
		if d.Status.Phase != "" && d.Status.Phase != mdmv1alpha1.DeviceRegistered {
			out = append(out, d)
		}
	}
	return out, nil
}

// count sets enrollmentCount and lastEnrollmentAt from the Devices, looking
// at most once per countInterval after a change, and returns when to look
// again.
func (r *EnrollmentTokenReconciler) count(ctx context.Context, token *mdmv1alpha1.EnrollmentToken) (time.Duration, error) {
	// Checked before the count, not after: during a burst every enrollment
	// reconciles the token, and listing its Devices each time would cost
	// O(devices) per enrollment.
	key, now := client.ObjectKeyFromObject(token), r.now()
	if wait := r.counts.wait(key, now, countInterval); wait > 0 {
		return wait, nil
	}
	devices, err := r.enrolledDevices(ctx, token)
	if err != nil {
		return 0, err
	}
	var last *metav1.Time
	for _, d := range devices {
		if at := d.Status.EnrolledAt; at != nil && (last == nil || at.After(last.Time)) {
			last = at.DeepCopy()
		}
	}
	n := int32(len(devices))
	if n == token.Status.EnrollmentCount && last.Equal(token.Status.LastEnrollmentAt) {
		return 0, nil
	}
	token.Status.EnrollmentCount, token.Status.LastEnrollmentAt = n, last
	r.counts.mark(key, now)
	return 0, nil
}

// tokenOfDevice maps a Device to the token it enrolled with.
func tokenOfDevice(_ context.Context, o client.Object) []reconcile.Request {
	if t := o.(*mdmv1alpha1.Device).Status.EnrollmentToken; t != "" {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: t}}}
	}
	return nil
}

// enrollmentChanged passes the Device events that can change a token's
// count: not the heartbeats and reports that update a Device all day.
var enrollmentChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		before, after := e.ObjectOld.(*mdmv1alpha1.Device), e.ObjectNew.(*mdmv1alpha1.Device)
		return before.Status.EnrollmentToken != after.Status.EnrollmentToken ||
			before.Status.Phase != after.Status.Phase ||
			!before.Status.EnrolledAt.Equal(after.Status.EnrolledAt)
	},
}
