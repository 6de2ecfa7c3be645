package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// UnenrollmentStamperPath serves the mutating webhook on devices/status.
const UnenrollmentStamperPath = "/mutate-mdm-kubemdm-io-v1alpha1-device-status"

// The match condition keeps every other status write (presence, facts,
// conditions) away from the webhook: only a change of the unenrollment
// phase is sent to it.
// +kubebuilder:webhook:path=/mutate-mdm-kubemdm-io-v1alpha1-device-status,mutating=true,failurePolicy=fail,sideEffects=None,groups=mdm.kubemdm.io,resources=devices/status,verbs=update,versions=v1alpha1,name=mdevicestatus.mdm.kubemdm.io,admissionReviewVersions=v1,patch=`{"matchConditions":[{"name":"unenrollment-changed","expression":"has(object.status) && has(object.status.unenrollment) && (!has(oldObject.status) || !has(oldObject.status.unenrollment) || object.status.unenrollment != oldObject.status.unenrollment)"}]}`

// UnenrollmentStamper stamps the dates of status.unenrollment whenever its
// phase changes, with the source API's rules for the manual override:
// pending sets requestDate to now and clears executionDate; success and
// failed set executionDate to now and keep requestDate; none clears both.
// Dates sent by the client are ignored, so they are always the server's:
// a change of the dates alone is undone.
type UnenrollmentStamper struct {
	Decoder admission.Decoder
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Handle implements admission.Handler.
func (s *UnenrollmentStamper) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Update || req.SubResource != "status" {
		return admission.Allowed("")
	}
	device, old := &mdmv1alpha1.Device{}, &mdmv1alpha1.Device{}
	if err := s.Decoder.DecodeRaw(req.Object, device); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if err := s.Decoder.DecodeRaw(req.OldObject, old); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	u := device.Status.Unenrollment
	if u == nil {
		return admission.Allowed("")
	}
	if o := old.Status.Unenrollment; o != nil && o.Phase == u.Phase {
		if equalTimes(o.RequestDate, u.RequestDate) && equalTimes(o.ExecutionDate, u.ExecutionDate) {
			return admission.Allowed("")
		}
		u.RequestDate, u.ExecutionDate = o.RequestDate, o.ExecutionDate
		return patchResponse(req, device)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	stamp := metav1.NewTime(now().UTC().Truncate(time.Second))
	var previous *metav1.Time
	if old.Status.Unenrollment != nil {
		previous = old.Status.Unenrollment.RequestDate
	}
	switch u.Phase {
	case mdmv1alpha1.UnenrollmentPending:
		u.RequestDate, u.ExecutionDate = &stamp, nil
	case mdmv1alpha1.UnenrollmentSuccess, mdmv1alpha1.UnenrollmentFailed:
		u.RequestDate, u.ExecutionDate = previous, &stamp
	case mdmv1alpha1.UnenrollmentNone:
		u.RequestDate, u.ExecutionDate = nil, nil
	}
	return patchResponse(req, device)
}

func patchResponse(req admission.Request, device *mdmv1alpha1.Device) admission.Response {
	patched, err := json.Marshal(device)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, patched)
}

func equalTimes(a, b *metav1.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}
