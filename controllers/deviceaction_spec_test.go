package controllers

import (
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestConflictingManagersComeFromTheCauses(t *testing.T) {
	conflict := func(causes ...metav1.StatusCause) error {
		err := apierrors.NewConflict(schema.GroupResource{Group: "mdm.kubemdm.io", Resource: "devices"}, "lost-1", nil)
		err.ErrStatus.Details.Causes = causes
		return err
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{conflict(metav1.StatusCause{Type: metav1.CauseTypeFieldManagerConflict, Message: `conflict with "argocd-controller" using mdm.kubemdm.io/v1alpha1`, Field: ".spec.state"}),
			`"argocd-controller"`},
		{conflict(
			metav1.StatusCause{Type: metav1.CauseTypeFieldManagerConflict, Message: `conflict with "kubectl-edit" with subresource ""`, Field: ".spec.kiosk.enabled"},
			metav1.StatusCause{Type: metav1.CauseTypeFieldManagerConflict, Message: `conflict with "kubectl-edit" with subresource ""`, Field: ".spec.kiosk.app"},
			metav1.StatusCause{Type: metav1.CauseTypeFieldManagerConflict, Message: `conflict with "flux" using v1`, Field: ".spec.kiosk.app"}),
			`"kubectl-edit", "flux"`},
		{conflict(), "another field manager"},
	} {
		if got := conflictingManagers(tc.err); got != tc.want {
			t.Errorf("conflictingManagers(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
