package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// ActionSpecManager is the field manager the state-changing actions apply a
// Device's spec field with.
const ActionSpecManager = "kubemdm-action-state"

// ownManagers are kubemdm's own writers of a Device's spec: the gateway,
// which creates enrolled Devices, and the actions themselves. A field held
// by anyone else (Git, a person) is never taken over.
var ownManagers = []string{ActionSpecManager, "kubemdm-gateway-enroll"}

// specChange is the spec field a state-changing action sets, or nil.
func specChange(a *mdmv1alpha1.DeviceAction) (field string, value any) {
	p := a.Spec.Parameters
	switch a.Spec.Action {
	case mdmv1alpha1.ActionDisable:
		return "state", string(mdmv1alpha1.DeviceStateDisabled)
	case mdmv1alpha1.ActionReenable:
		return "state", string(mdmv1alpha1.DeviceStateActive)
	case mdmv1alpha1.ActionEnterKiosk:
		return "kiosk", map[string]any{"enabled": true, "app": p.KioskApp}
	case mdmv1alpha1.ActionExitKiosk:
		return "kiosk", map[string]any{"enabled": false}
	case mdmv1alpha1.ActionEnableLostMode:
		lm := map[string]any{"enabled": true}
		if p != nil && p.LostMode != nil {
			for k, v := range map[string]string{"message": p.LostMode.Message, "phoneNumber": p.LostMode.PhoneNumber, "footnote": p.LostMode.Footnote} {
				if v != "" {
					lm[k] = v
				}
			}
		}
		return "lostMode", lm
	case mdmv1alpha1.ActionDisableLostMode:
		return "lostMode", map[string]any{"enabled": false}
	}
	return "", nil
}

// foreignOwner names a manager outside kubemdm that holds the spec field.
func foreignOwner(d *mdmv1alpha1.Device, field string) string {
	for _, mf := range d.ManagedFields {
		if slices.Contains(ownManagers, mf.Manager) || mf.FieldsV1 == nil {
			continue
		}
		var fields map[string]map[string]any
		if json.Unmarshal(mf.FieldsV1.Raw, &fields) != nil {
			continue
		}
		if _, ok := fields["f:spec"]["f:"+field]; ok {
			return mf.Manager
		}
	}
	return ""
}

// applySpec sets the action's spec field on the device by server-side
// apply. Where another manager holds the field the device's row is Aborted
// naming it: an action never silently overrides Git. Reports whether the
// field was set.
func (r *DeviceActionReconciler) applySpec(ctx context.Context, a *mdmv1alpha1.DeviceAction, d *mdmv1alpha1.Device) (ok bool, reason string, err error) {
	field, value := specChange(a)
	if field == "" {
		return true, "", nil
	}
	if owner := foreignOwner(d, field); owner != "" {
		return false, fmt.Sprintf("spec.%s of Device %s is managed by %q; change it there, or remove it from that manager, to let %s set it",
			field, d.Name, owner, a.Spec.Action), nil
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": mdmv1alpha1.GroupVersion.String(),
		"kind":       "Device",
		"metadata":   map[string]any{"name": d.Name, "namespace": d.Namespace, "uid": string(d.UID)},
		"spec":       map[string]any{field: value},
	}}
	// Forced only over kubemdm's own managers, which foreignOwner let pass.
	err = r.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(ActionSpecManager), client.ForceOwnership)
	if err != nil {
		if strings.Contains(err.Error(), "conflict") {
			return false, err.Error(), nil
		}
		return false, "", fmt.Errorf("setting spec.%s of Device %s: %w", field, d.Name, err)
	}
	return true, "", nil
}
