package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// foreignOwner names a manager outside kubemdm that holds the spec field
// of d. The cache strips managedFields, so they are read from the
// apiserver when the reconciler has a reader for it.
func (r *DeviceActionReconciler) foreignOwner(ctx context.Context, d *mdmv1alpha1.Device, field string) (string, error) {
	owners := d
	if r.APIReader != nil {
		owners = &mdmv1alpha1.Device{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(d), owners); err != nil {
			return "", fmt.Errorf("reading the field owners of Device %s: %w", d.Name, err)
		}
	}
	return foreignOwnerOf(owners, field), nil
}

// foreignOwnerOf names a manager outside kubemdm that holds the spec field
// in d's managedFields.
func foreignOwnerOf(d *mdmv1alpha1.Device, field string) string {
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
	owner, err := r.foreignOwner(ctx, d, field)
	if apierrors.IsNotFound(err) {
		return false, fmt.Sprintf("Device %s was deleted", d.Name), nil
	}
	if err != nil {
		return false, "", err
	}
	if owner != "" {
		return false, fmt.Sprintf("spec.%s of Device %s is managed by %q; change it there, or remove it from that manager, to let %s set it",
			field, d.Name, owner, a.Spec.Action), nil
	}
	err = r.applySpecField(ctx, d, field, value)
	if apierrors.IsConflict(err) {
		// Another manager took the field since the cache showed it; the
		// apply, made without force, says which.
		return false, fmt.Sprintf("spec.%s of Device %s is managed by %s; change it there, or remove it from that manager, to let %s set it",
			field, d.Name, conflictingManagers(err), a.Spec.Action), nil
	}
	if err != nil {
		return false, "", fmt.Errorf("setting spec.%s of Device %s: %w", field, d.Name, err)
	}
	return true, "", nil
}

// conflictingManagers names the field managers a server-side apply conflict
// reports, from the error's causes.
func conflictingManagers(err error) string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return "another field manager"
	}
	var names []string
	for _, c := range status.Status().Details.Causes {
		if c.Type != metav1.CauseTypeFieldManagerConflict {
			continue
		}
		if m := quoted.FindStringSubmatch(c.Message); m != nil && !slices.Contains(names, strconv.Quote(m[1])) {
			names = append(names, strconv.Quote(m[1]))
		}
	}
	if len(names) == 0 {
		return "another field manager"
	}
	return strings.Join(names, ", ")
}

// quoted finds the manager in a conflict cause: conflict with "NAME" ...
var quoted = regexp.MustCompile(`conflict with "([^"]+)"`)

// applySpecField sets one spec field of a Device as the actions' manager.
func (r *DeviceActionReconciler) applySpecField(ctx context.Context, d *mdmv1alpha1.Device, field string, value any) error {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": mdmv1alpha1.GroupVersion.String(),
		"kind":       "Device",
		"metadata":   map[string]any{"name": d.Name, "namespace": d.Namespace, "uid": string(d.UID)},
		"spec":       map[string]any{field: value},
	}}
	// Without force: a field someone else owns is never taken over, even
	// when the cache did not show that owner yet.
	return r.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(ActionSpecManager))
}

// revertSpec undoes the spec field a canceled or expired action set on a
// device that never ran it, as long as the field still holds the action's
// value and no one outside kubemdm took it over since. The value before is
// known from eligibility (a Disable ran on an Active device) or, for kiosk
// and lost mode, is what the device last reported: the command never
// reached it, so that is what it still shows.
func (r *DeviceActionReconciler) revertSpec(ctx context.Context, a *mdmv1alpha1.DeviceAction, d *mdmv1alpha1.Device) error {
	field, value := specChange(a)
	if field == "" {
		return nil
	}
	if owner, err := r.foreignOwner(ctx, d, field); err != nil || owner != "" {
		return client.IgnoreNotFound(err)
	}
	current, err := specFieldOf(d, field)
	if err != nil {
		return err
	}
	if want, err := jsonValue(value); err != nil || !equality.Semantic.DeepEqual(current, want) {
		return err
	}
	var previous any
	switch a.Spec.Action {
	case mdmv1alpha1.ActionDisable:
		previous = string(mdmv1alpha1.DeviceStateActive)
	case mdmv1alpha1.ActionReenable:
		previous = string(mdmv1alpha1.DeviceStateDisabled)
	case mdmv1alpha1.ActionEnterKiosk, mdmv1alpha1.ActionExitKiosk:
		previous = reportedKiosk(d, a.Spec.Action == mdmv1alpha1.ActionEnterKiosk)
	case mdmv1alpha1.ActionEnableLostMode, mdmv1alpha1.ActionDisableLostMode:
		previous = reportedLostMode(d, a.Spec.Action == mdmv1alpha1.ActionEnableLostMode)
	}
	if previous == nil {
		return nil
	}
	if err := r.applySpecField(ctx, d, field, previous); err != nil {
		return fmt.Errorf("undoing spec.%s of Device %s: %w", field, d.Name, err)
	}
	return nil
}

// specFieldOf is one field of a Device's spec in its JSON form.
func specFieldOf(d *mdmv1alpha1.Device, field string) (any, error) {
	spec, err := jsonValue(d.Spec)
	if err != nil {
		return nil, err
	}
	m, _ := spec.(map[string]any)
	return m[field], nil
}

// jsonValue is v as encoding/json decodes it, for comparing a typed value
// with an apply body.
func jsonValue(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	return out, json.Unmarshal(raw, &out)
}

// reportedKiosk is the kiosk mode the device last reported, as a spec value,
// or nil when that cannot be a spec. With no report, entering kiosk mode is
// undone to off.
func reportedKiosk(d *mdmv1alpha1.Device, offWithoutReport bool) any {
	k := d.Status.Kiosk
	switch {
	case k == nil && offWithoutReport, k != nil && !k.Enabled:
		return map[string]any{"enabled": false}
	case k != nil && k.App != "":
		return map[string]any{"enabled": true, "app": k.App}
	}
	return nil
}

// reportedLostMode is lost mode as the device last reported it, as a spec
// value, or nil when that cannot be a spec.
func reportedLostMode(d *mdmv1alpha1.Device, offWithoutReport bool) any {
	l := d.Status.LostMode
	switch {
	case l == nil && offWithoutReport, l != nil && !l.Enabled:
		return map[string]any{"enabled": false}
	case l != nil && (l.Message != "" || l.PhoneNumber != ""):
		out := map[string]any{"enabled": true}
		for k, v := range map[string]string{"message": l.Message, "phoneNumber": l.PhoneNumber, "footnote": l.Footnote} {
			if v != "" {
				out[k] = v
			}
		}
		return out
	}
	return nil
}
