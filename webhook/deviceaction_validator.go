// Package webhook holds kubemdm's admission webhooks: the RBAC guard and
// eligibility warnings for DeviceActions, and the server-side dates of a
// manual unenrollment override.
package webhook

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/controllers/eligibility"
)

// maxWarnings bounds the eligibility warnings of one request.
const maxWarnings = 20

// DeviceActionValidator guards destructive actions with an RBAC verb of
// their own name and warns about devices the action cannot run on.
type DeviceActionValidator struct {
	// Client creates SubjectAccessReviews and reads Devices from the cache.
	Client client.Client
}

// +kubebuilder:webhook:path=/validate-mdm-kubemdm-io-v1alpha1-deviceaction,mutating=false,failurePolicy=fail,sideEffects=None,groups=mdm.kubemdm.io,resources=deviceactions,verbs=create,versions=v1alpha1,name=vdeviceaction.mdm.kubemdm.io,admissionReviewVersions=v1
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// ValidateCreate checks the requester may run the action and warns about
// ineligible devices, on real and on --dry-run=server requests alike.
func (v *DeviceActionValidator) ValidateCreate(ctx context.Context, a *mdmv1alpha1.DeviceAction) (admission.Warnings, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if a.Spec.Action.Destructive() {
		if err := requireActionVerb(ctx, v.Client, req.UserInfo, a.Namespace, a.Spec.Action, "deviceactions", a.Name,
			field.NewPath("spec", "action"), fmt.Sprintf("a %s DeviceAction", a.Spec.Action)); err != nil {
			return nil, err
		}
	}
	return v.warnings(ctx, a), nil
}

// warnings lists the named devices the action cannot run on. Selectors are
// resolved when the action starts, so they get no warnings here.
func (v *DeviceActionValidator) warnings(ctx context.Context, a *mdmv1alpha1.DeviceAction) admission.Warnings {
	var out admission.Warnings
	for _, name := range a.Spec.Devices {
		if len(out) == maxWarnings {
			out = append(out, fmt.Sprintf("and possibly more of the %d devices", len(a.Spec.Devices)))
			break
		}
		d := &mdmv1alpha1.Device{}
		if err := v.Client.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: name}, d); err != nil {
			if apierrors.IsNotFound(err) {
				out = append(out, fmt.Sprintf("device %s: not found (code %d)", name, mdmv1alpha1.CodeNotFound))
			}
			continue
		}
		if verdict := eligibility.Check(a.Spec.Action, d); !verdict.Eligible {
			out = append(out, fmt.Sprintf("device %s: ineligible: %s (code %d)", name, verdict.Reason, verdict.Code))
		}
	}
	return out
}

// ValidateUpdate allows updates; the schema keeps the spec immutable.
func (v *DeviceActionValidator) ValidateUpdate(context.Context, *mdmv1alpha1.DeviceAction, *mdmv1alpha1.DeviceAction) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete allows deletes.
func (v *DeviceActionValidator) ValidateDelete(context.Context, *mdmv1alpha1.DeviceAction) (admission.Warnings, error) {
	return nil, nil
}
