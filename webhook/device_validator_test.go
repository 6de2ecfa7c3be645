package webhook

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func TestDeletionAction(t *testing.T) {
	device := func(phase mdmv1alpha1.DevicePhase, policy mdmv1alpha1.DeletionPolicy, annotations map[string]string) *mdmv1alpha1.Device {
		return &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Annotations: annotations},
			Spec: mdmv1alpha1.DeviceSpec{DeletionPolicy: policy}, Status: mdmv1alpha1.DeviceStatus{Phase: phase}}
	}
	record := map[string]string{mdmv1alpha1.AnnotationEnrollment: "{}"}
	for _, tc := range []struct {
		name string
		d    *mdmv1alpha1.Device
		want mdmv1alpha1.ActionType
	}{
		{"enrolled, default policy", device(mdmv1alpha1.DeviceEnrolled, "", nil), mdmv1alpha1.ActionRetire},
		{"enrolled, Unenroll", device(mdmv1alpha1.DeviceEnrolled, mdmv1alpha1.DeletionPolicyUnenroll, nil), mdmv1alpha1.ActionUnenroll},
		{"enrolled, Orphan", device(mdmv1alpha1.DeviceEnrolled, mdmv1alpha1.DeletionPolicyOrphan, nil), ""},
		{"registered", device(mdmv1alpha1.DeviceRegistered, "", nil), ""},
		{"no phase, created by a person", device("", "", nil), ""},
		{"no phase yet, enrollment record to be copied", device("", "", record), mdmv1alpha1.ActionRetire},
		{"retired", device(mdmv1alpha1.DeviceRetired, "", nil), ""},
		{"forced", device(mdmv1alpha1.DeviceEnrolled, "", map[string]string{mdmv1alpha1.AnnotationForceDelete: "true"}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := deletionAction(tc.d); got != tc.want {
				t.Errorf("deletionAction = %q, want %q", got, tc.want)
			}
		})
	}
}
