package controllers

import (
	"context"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// IndexAssignedConfigurations finds the Devices that name a configuration
// in spec.configurations.
const IndexAssignedConfigurations = "spec.configurations.name"

func assignedConfigurations(o client.Object) []string {
	var names []string
	for _, a := range o.(*mdmv1alpha1.Device).Spec.Configurations {
		names = append(names, a.Name)
	}
	return names
}

// targetedDevices are the Devices a Configuration targets, by selector or
// by name, read from the cache.
func targetedDevices(ctx context.Context, r client.Reader, cfg *mdmv1alpha1.Configuration) ([]mdmv1alpha1.Device, error) {
	seen := map[string]bool{}
	var out []mdmv1alpha1.Device
	add := func(list *mdmv1alpha1.DeviceList) {
		for _, d := range list.Items {
			if !seen[d.Name] {
				seen[d.Name] = true
				out = append(out, d)
			}
		}
	}
	named := &mdmv1alpha1.DeviceList{}
	if err := r.List(ctx, named, client.InNamespace(cfg.Namespace), client.MatchingFields{IndexAssignedConfigurations: cfg.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing the Devices that name %s: %w", cfg.Name, err)
	}
	add(named)
	if cfg.Spec.DeviceSelector != nil {
		selector, err := metav1.LabelSelectorAsSelector(cfg.Spec.DeviceSelector)
		if err != nil {
			return nil, fmt.Errorf("spec.deviceSelector: %w", err)
		}
		selected := &mdmv1alpha1.DeviceList{}
		if err := r.List(ctx, selected, client.InNamespace(cfg.Namespace), client.MatchingLabelsSelector{Selector: selector}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("listing the Devices %s selects: %w", cfg.Name, err)
		}
		add(selected)
	}
	return out, nil
}

// countDevices classifies targeted Devices by their row for the
// configuration, against its current revision. Devices that left
// management are not counted.
func countDevices(cfg *mdmv1alpha1.Configuration, devices []mdmv1alpha1.Device) *mdmv1alpha1.ConfigurationDeviceCounts {
	c := &mdmv1alpha1.ConfigurationDeviceCounts{}
	for i := range devices {
		d := &devices[i]
		if !d.Status.Phase.Managed() && d.Status.Phase != mdmv1alpha1.DeviceRegistered {
			continue
		}
		excluded := slices.ContainsFunc(d.Spec.Configurations, func(a mdmv1alpha1.ConfigurationAssignment) bool {
			return a.Name == cfg.Name && a.Excluded
		})
		if excluded {
			c.Excluded++
			continue
		}
		c.Targeted++
		if len(cfg.Spec.Platforms) > 0 && !slices.Contains(cfg.Spec.Platforms, d.Spec.Platform) {
			c.Unsupported++
			continue
		}
		var row *mdmv1alpha1.DeviceConfigurationStatus
		for j := range d.Status.Configurations {
			if d.Status.Configurations[j].Name == cfg.Name {
				row = &d.Status.Configurations[j]
			}
		}
		switch {
		case row == nil:
			c.Pending++
		case row.State == mdmv1alpha1.ConfigurationOverridden:
			c.Overridden++
		case row.Revision != cfg.Status.Revision || cfg.Status.Revision == "":
			c.Pending++
		case row.State == mdmv1alpha1.ConfigurationApplied:
			c.Applied++
		case row.State == mdmv1alpha1.ConfigurationFailed:
			c.Failed++
		default:
			c.Pending++
		}
	}
	return c
}

// deviceConfigurations maps a Device to the Configurations that may count
// it: those it names, those it has rows for, and those whose selector
// matches its labels.
func (r *ConfigurationReconciler) deviceConfigurations(ctx context.Context, o client.Object) []reconcile.Request {
	d, ok := o.(*mdmv1alpha1.Device)
	if !ok {
		return nil
	}
	names := map[string]bool{}
	for _, a := range d.Spec.Configurations {
		names[a.Name] = true
	}
	for _, row := range d.Status.Configurations {
		names[row.Name] = true
	}
	list := &mdmv1alpha1.ConfigurationList{}
	if err := r.List(ctx, list, client.InNamespace(d.Namespace), client.UnsafeDisableDeepCopy); err == nil {
		for _, c := range list.Items {
			if c.Spec.DeviceSelector == nil {
				continue
			}
			if s, err := metav1.LabelSelectorAsSelector(c.Spec.DeviceSelector); err == nil && s.Matches(labels.Set(d.Labels)) {
				names[c.Name] = true
			}
		}
	}
	out := make([]reconcile.Request, 0, len(names))
	for name := range names {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: d.Namespace, Name: name}})
	}
	return out
}
