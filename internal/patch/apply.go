package patch

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// ApplyDeviceStatus server-side applies the given status fields of a Device
// as manager. A manager owns exactly the fields it sends, so writers of
// different parts of the status never conflict; each must send its whole set
// every time. The UID precondition keeps a write for a deleted Device from
// landing on a new one of the same name.
func ApplyDeviceStatus(ctx context.Context, c client.Client, key types.NamespacedName, uid types.UID, manager string, status map[string]any) error {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": mdmv1alpha1.GroupVersion.String(),
		"kind":       "Device",
		"metadata":   map[string]any{"name": key.Name, "namespace": key.Namespace, "uid": string(uid)},
		"status":     status,
	}}
	return c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(manager), client.ForceOwnership)
}

// ApplyDeviceStatusAt is ApplyDeviceStatus guarded by the resourceVersion d
// was read at: it fails with a conflict when the Device changed since, so a
// decision taken on a stale read (a phase moved from a cached one) never
// lands. d's resourceVersion is moved to the written one.
func ApplyDeviceStatusAt(ctx context.Context, c client.Client, d *mdmv1alpha1.Device, manager string, status map[string]any) error {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": mdmv1alpha1.GroupVersion.String(),
		"kind":       "Device",
		"metadata": map[string]any{"name": d.Name, "namespace": d.Namespace, "uid": string(d.UID),
			"resourceVersion": d.ResourceVersion},
		"status": status,
	}}
	if err := c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(manager), client.ForceOwnership); err != nil {
		return err
	}
	d.ResourceVersion = u.GetResourceVersion()
	return nil
}
