package webhook

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/enrollment"
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

// +kubebuilder:webhook:path=/validate-mdm-kubemdm-io-v1alpha1-device,mutating=false,failurePolicy=fail,sideEffects=None,groups=mdm.kubemdm.io,resources=devices,verbs=create;update;delete,versions=v1alpha1,name=vdevice.mdm.kubemdm.io,admissionReviewVersions=v1,patch=`{"matchConditions":[{"name":"deleting-or-requesting-compliance","expression":"request.operation == 'DELETE' || (request.operation == 'UPDATE' && has(oldObject.metadata.deletionTimestamp) && oldObject.spec.deletionPolicy != object.spec.deletionPolicy) || (has(object.metadata.annotations) && 'mdm.kubemdm.io/compliance-requested' in object.metadata.annotations && (request.operation == 'CREATE' || !has(oldObject.metadata.annotations) || !('mdm.kubemdm.io/compliance-requested' in oldObject.metadata.annotations) || oldObject.metadata.annotations['mdm.kubemdm.io/compliance-requested'] != object.metadata.annotations['mdm.kubemdm.io/compliance-requested']))"}]}`
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// ValidateCreate checks a compliance request.
func (v *DeviceValidator) ValidateCreate(_ context.Context, d *mdmv1alpha1.Device) (admission.Warnings, error) {
	return nil, validComplianceRequest(nil, d, time.Now())
}

// validComplianceRequest refuses a compliance-requested annotation, new or
// changed, that the Device controller could not honour.
func validComplianceRequest(old, d *mdmv1alpha1.Device, now time.Time) error {
	value, set := d.Annotations[mdmv1alpha1.AnnotationComplianceRequested]
	if !set || (old != nil && old.Annotations[mdmv1alpha1.AnnotationComplianceRequested] == value) {
		return nil
	}
	path := field.NewPath("metadata", "annotations").Key(mdmv1alpha1.AnnotationComplianceRequested)
	at, err := time.Parse(time.RFC3339, value)
	var bad *field.Error
	switch {
	case err != nil:
		bad = field.Invalid(path, value, "must be an RFC 3339 time such as "+now.UTC().Format(time.RFC3339))
	case at.After(now.Add(mdmv1alpha1.ComplianceRequestSkew)):
		bad = field.Invalid(path, value, fmt.Sprintf("is more than %s ahead; a compliance evaluation cannot be asked for the future", mdmv1alpha1.ComplianceRequestSkew))
	default:
		return nil
	}
	return apierrors.NewInvalid(mdmv1alpha1.GroupVersion.WithKind("Device").GroupKind(), d.Name, field.ErrorList{bad})
}

// ValidateUpdate checks a compliance request and keeps the deletion policy of a Device being deleted: the
// verb was checked against it when the deletion was asked, and changing it
// afterwards (Unenroll to Retire) would run an action nobody was allowed.
func (v *DeviceValidator) ValidateUpdate(_ context.Context, old, d *mdmv1alpha1.Device) (admission.Warnings, error) {
	if err := validComplianceRequest(old, d, time.Now()); err != nil {
		return nil, err
	}
	if !old.DeletionTimestamp.IsZero() && old.Spec.DeletionPolicy != d.Spec.DeletionPolicy {
		return nil, apierrors.NewForbidden(mdmv1alpha1.GroupVersion.WithResource("devices").GroupResource(), d.Name,
			field.Forbidden(field.NewPath("spec", "deletionPolicy"), fmt.Sprintf(
				"Device %s is being deleted with deletionPolicy %s, which can no longer change; annotate it %s=true to release it without touching the device",
				d.Name, old.Spec.DeletionPolicy, mdmv1alpha1.AnnotationForceDelete)))
	}
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
	// A namespace being deleted is emptied by the namespace controller,
	// which holds no kubemdm verbs; whoever deleted the namespace decided.
	ns := &corev1.Namespace{}
	if err := v.Client.Get(ctx, client.ObjectKey{Name: d.Namespace}, ns); err == nil && !ns.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	return nil, requireActionVerb(ctx, v.Client, req.UserInfo, d.Namespace, action, "devices", d.Name,
		field.NewPath("spec", "deletionPolicy"),
		fmt.Sprintf("deleting Device %s runs its deletionPolicy %s on the device, which", d.Name, d.Spec.DeletionPolicy))
}

// deletionAction is the action deleting the Device will run, or "" when it
// releases the device without touching it. A Device whose enrollment record
// its controller has yet to copy is enrolled. The record is not verified
// here: a forged one only makes deleting the Device ask for more.
func deletionAction(d *mdmv1alpha1.Device) mdmv1alpha1.ActionType {
	phase := d.Status.Phase
	if _, pending := enrollment.PendingRecord(d); pending {
		phase = mdmv1alpha1.DeviceEnrolled
	}
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
