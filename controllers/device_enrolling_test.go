package controllers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/enrollment"
)

func TestEnrollmentUnderWay(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	device := func(age time.Duration, label bool, phase mdmv1alpha1.DevicePhase) *mdmv1alpha1.Device {
		d := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(now.Add(-age))},
			Status: mdmv1alpha1.DeviceStatus{Phase: phase}}
		if label {
			d.Labels = map[string]string{mdmv1alpha1.LabelEnrollmentToken: "fleet"}
		}
		return d
	}
	for _, tc := range []struct {
		name string
		d    *mdmv1alpha1.Device
		want time.Duration
	}{
		{"created by an enrollment a moment ago", device(time.Second, true, ""), enrollingGrace - time.Second},
		{"created by an enrollment that never finished", device(enrollingGrace, true, ""), 0},
		{"enrolled already", device(time.Second, true, mdmv1alpha1.DeviceEnrolled), 0},
		{"created by a person", device(time.Second, false, ""), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := enrollmentUnderWay(tc.d, now); got != tc.want {
				t.Errorf("enrollmentUnderWay = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestConnectionDue(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	device := func(age time.Duration, record bool, phase mdmv1alpha1.DevicePhase, connected bool) *mdmv1alpha1.Device {
		d := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(now.Add(-age))},
			Status: mdmv1alpha1.DeviceStatus{Phase: phase}}
		if record {
			d.Annotations = map[string]string{mdmv1alpha1.AnnotationEnrollment: "{}"}
		}
		if connected {
			d.Status.Conditions = []metav1.Condition{{Type: mdmv1alpha1.DeviceConditionConnected, Status: metav1.ConditionTrue}}
		}
		return d
	}
	deleted := device(time.Second, true, "", false)
	deleted.DeletionTimestamp = &metav1.Time{Time: now}
	for _, tc := range []struct {
		name string
		d    *mdmv1alpha1.Device
		want time.Duration
	}{
		{"enrolled a moment ago, agent not connected yet", device(time.Second, true, "", false), connectionWait - time.Second},
		{"agent connected", device(time.Second, true, "", true), 0},
		{"agent never connected", device(connectionWait, true, "", false), 0},
		{"record copied already", device(time.Second, true, mdmv1alpha1.DeviceEnrolled, false), 0},
		{"no record", device(time.Second, false, "", false), 0},
		{"being deleted", deleted, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := connectionDue(tc.d, now); got != tc.want {
				t.Errorf("connectionDue = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestUnsettledWait(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	action := func(age time.Duration) *mdmv1alpha1.DeviceAction {
		return &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(now.Add(-age))}}
	}
	withPhase := func(phase mdmv1alpha1.DevicePhase) target {
		return target{name: "d", device: &mdmv1alpha1.Device{Status: mdmv1alpha1.DeviceStatus{Phase: phase}}}
	}
	deleted := withPhase("")
	deleted.device.DeletionTimestamp = &metav1.Time{Time: now}
	deletedEnrolling := withPhase("")
	deletedEnrolling.device.DeletionTimestamp = &metav1.Time{Time: now}
	deletedEnrolling.device.Annotations = map[string]string{mdmv1alpha1.AnnotationEnrollment: "{}"}
	for _, tc := range []struct {
		name    string
		action  *mdmv1alpha1.DeviceAction
		targets []target
		wait    bool
	}{
		{"a target its controller has yet to settle", action(time.Second), []target{withPhase(mdmv1alpha1.DeviceEnrolled), withPhase("")}, true},
		{"every target settled", action(time.Second), []target{withPhase(mdmv1alpha1.DeviceEnrolled), withPhase(mdmv1alpha1.DeviceRegistered)}, false},
		{"a missing target is judged at once", action(time.Second), []target{{name: "gone"}}, false},
		{"a deleted target is judged at once", action(time.Second), []target{deleted}, false},
		// Its deletion policy's action, created on the phase the
		// controller adopted from the record and is writing.
		{"a deleted target whose enrollment record is being stored", action(time.Second), []target{deletedEnrolling}, true},
		{"waited long enough", action(unsettledGrace), []target{withPhase("")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := unsettledWait(tc.action, tc.targets, now) > 0; got != tc.wait {
				t.Errorf("waits = %t, want %t", got, tc.wait)
			}
		})
	}
}

func TestAdoptEnrollmentOfDeletedDevice(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	value, err := enrollment.Record{Token: "fleet", Key: "sha256:00", At: created}.Sign(key, "ns", "dev")
	if err != nil {
		t.Fatal(err)
	}
	d := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "dev", CreationTimestamp: metav1.NewTime(created),
		DeletionTimestamp: &metav1.Time{Time: created.Add(time.Second)}, Annotations: map[string]string{mdmv1alpha1.AnnotationEnrollment: value}}}
	(&DeviceReconciler{DeviceCAKey: &key.PublicKey}).adoptEnrollment(context.Background(), d)
	// Deleted before its controller copied the record, it is still an
	// enrolled device, whose deletion policy runs on it.
	if d.Status.Phase != mdmv1alpha1.DeviceEnrolled || d.Status.EnrollmentToken != "fleet" {
		t.Errorf("phase %q, token %q; want Enrolled by fleet", d.Status.Phase, d.Status.EnrollmentToken)
	}
}
