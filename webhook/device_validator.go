package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// DeviceValidator guards the deletion of a managed Device. Its finalizer
// runs spec.deletionPolicy with the manager's own rights, so deleting a
// Device that would be retired or unenrolled needs the same verb as the
// Retire or Unenroll DeviceAction: otherwise anyone allowed to delete a
// Device could retire a phone.
type DeviceValidator struct {
	// Client creates SubjectAccessReviews and reads Namespaces.
	Client client.Client
}

// namespaceController is the user that empties a namespace being deleted; it
// holds no kubemdm verbs, and a namespace must still go.
const namespaceController = "system:serviceaccount:kube-system:namespace-controller"

// +kubebuilder:webhook:path=/validate-mdm-kubemdm-io-v1alpha1-device,mutating=false,failurePolicy=fail,sideEffects=None,groups=mdm.kubemdm.io,resources=devices,verbs=delete,versions=v1alpha1,name=vdevice.mdm.kubemdm.io,admissionReviewVersions=v1
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// ValidateCreate allows creates.
func (v *DeviceValidator) ValidateCreate(context.Context, *mdmv1alpha1.Device) (admission.Warnings, error) {
	return nil, nil
}

// ValidateUpdate allows updates.
func (v *DeviceValidator) ValidateUpdate(context.Context, *mdmv1alpha1.Device, *mdmv1alpha1.Device) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete checks that the requester may run the action the deletion
// policy will run on the device.
func (v *DeviceValidator) ValidateDelete(ctx context.Context, d *mdmv1alpha1.Device) (admission.Warnings, error) {
	action := deletionAction(d)
	if action == "" || !d.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if req.UserInfo.Username == namespaceController {
		ns := &corev1.Namespace{}
		if err := v.Client.Get(ctx, client.ObjectKey{Name: d.Namespace}, ns); err != nil || !ns.DeletionTimestamp.IsZero() {
			return nil, nil // the namespace is going: whoever deleted it decided
		}
	}
	return nil, requireActionVerb(ctx, v.Client, req.UserInfo, d.Namespace, action, "devices", d.Name,
		field.NewPath("spec", "deletionPolicy"),
		fmt.Sprintf("deleting Device %s runs its deletionPolicy %s on the device, which", d.Name, d.Spec.DeletionPolicy))
}

// deletionAction is the action deleting the Device will run, or "" when it
// releases the device without touching it.
func deletionAction(d *mdmv1alpha1.Device) mdmv1alpha1.ActionType {
	phase := d.Status.Phase
	if phase == "" || phase == mdmv1alpha1.DeviceRegistered || !phase.Managed() ||
		d.Annotations[mdmv1alpha1.AnnotationForceDelete] == "true" {
		return ""
	}
	switch d.Spec.DeletionPolicy {
	case mdmv1alpha1.DeletionPolicyOrphan:
		return ""
	case mdmv1alpha1.DeletionPolicyUnenroll:
		return mdmv1alpha1.ActionUnenroll
	}
	return mdmv1alpha1.ActionRetire
}
