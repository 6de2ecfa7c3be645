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
	u := deviceStatus(key, uid, "", status)
	return c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(manager), client.ForceOwnership)
}

// deviceStatus is some status fields of a Device to apply, with
// preconditions on its UID and, when given, resourceVersion. The apply
// writes its answer into it.
func deviceStatus(key types.NamespacedName, uid types.UID, resourceVersion string, status map[string]any) *unstructured.Unstructured {
	meta := map[string]any{"name": key.Name, "namespace": key.Namespace, "uid": string(uid)}
	if resourceVersion != "" {
		meta["resourceVersion"] = resourceVersion
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": mdmv1alpha1.GroupVersion.String(),
		"kind":       "Device",
		"metadata":   meta,
		"status":     status,
	}}
	return u
}

// ApplyDeviceStatusAt is ApplyDeviceStatus guarded by the resourceVersion d
// was read at: it fails with a conflict when the Device changed since, so a
// decision taken on a stale read (a phase moved from a cached one) never
// lands. d's resourceVersion and managedFields are moved to the written
// ones.
func ApplyDeviceStatusAt(ctx context.Context, c client.Client, d *mdmv1alpha1.Device, manager string, status map[string]any) error {
	u := deviceStatus(client.ObjectKeyFromObject(d), d.UID, d.ResourceVersion, status)
	if err := c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(manager), client.ForceOwnership); err != nil {
		return err
	}
	d.ResourceVersion, d.ManagedFields = u.GetResourceVersion(), u.GetManagedFields()
	return nil
}
