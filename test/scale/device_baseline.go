package scale

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// shadowGroup serves a copy of the Device CRD that no controller watches,
// so that the baseline can time what the apiserver alone spends on a
// Device-shaped object: a custom resource is stored and validated as JSON,
// and costs several times a ConfigMap.
const shadowGroup = "baseline.scale.kubemdm.io"

// shadowDeviceCRD is the Device CRD under shadowGroup.
func shadowDeviceCRD() (*apiextensionsv1.CustomResourceDefinition, error) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "config", "crd", "bases", mdmv1alpha1.GroupVersion.Group+"_devices.yaml"))
	if err != nil {
		return nil, err
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(raw, crd); err != nil {
		return nil, fmt.Errorf("reading the Device CRD: %w", err)
	}
	crd.ObjectMeta = metav1.ObjectMeta{Name: crd.Spec.Names.Plural + "." + shadowGroup}
	crd.Spec.Group = shadowGroup
	return crd, nil
}

// DeviceBaseline is what the apiserver of this run spends on Device-shaped
// objects, with createWorkers workers and no controller.
type DeviceBaseline struct {
	// Creates objects were created in CreateTime, then each had two status
	// applies, by two field managers, in StatusTime.
	Creates    int
	CreateTime time.Duration
	StatusTime time.Duration
}

// EnrollmentCeiling is enrollments per second if each cost nothing but the
// fewest writes an enrollment can make: the Device's create and two status
// writes (the enrollment's and the connection's).
func (b DeviceBaseline) EnrollmentCeiling() float64 {
	return float64(b.Creates) / (b.CreateTime + b.StatusTime).Seconds()
}

func (b DeviceBaseline) String() string {
	return fmt.Sprintf("%d Device-shaped objects (the Device CRD under %s, no controller) created in %s (%.0f/s) and given %d status applies in %s (%.0f/s): an enrollment's create and two status writes at most %.0f/s",
		b.Creates, shadowGroup, b.CreateTime.Round(time.Millisecond), float64(b.Creates)/b.CreateTime.Seconds(),
		2*b.Creates, b.StatusTime.Round(time.Millisecond), float64(2*b.Creates)/b.StatusTime.Seconds(), b.EnrollmentCeiling())
}

// deviceBaseline creates n Device-shaped objects and applies two status
// writes to each, as an enrollment does at the least.
func (h *Harness) deviceBaseline(ctx context.Context, n int) (DeviceBaseline, error) {
	b := DeviceBaseline{Creates: n}
	ns, err := h.namespace(ctx, "baseline-devices-")
	if err != nil {
		return b, err
	}
	apiVersion := shadowGroup + "/" + mdmv1alpha1.GroupVersion.Version
	object := func(i int) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": apiVersion, "kind": "Device",
			"metadata": map[string]any{"namespace": ns, "name": fmt.Sprintf("scale-%06d", i)},
		}}
	}
	began := time.Now()
	err = forAll(n, func(i int) error {
		d := object(i)
		d.SetLabels(map[string]string{mdmv1alpha1.LabelEnrollmentToken: "storm"})
		d.SetFinalizers([]string{mdmv1alpha1.Finalizer})
		d.Object["spec"] = map[string]any{"platform": string(mdmv1alpha1.PlatformLinux), "serialNumber": fmt.Sprintf("SCALE%06d", i)}
		return h.client.Create(ctx, d)
	})
	if b.CreateTime = time.Since(began); err != nil {
		return b, fmt.Errorf("creating Device-shaped objects: %w", err)
	}
	now := metav1.Now().ToUnstructured()
	statuses := []struct {
		manager string
		status  map[string]any
	}{
		{"baseline-enroll", map[string]any{"phase": string(mdmv1alpha1.DeviceEnrolled), "enrolledAt": now,
			"enrollmentToken": "storm", "enrollmentKey": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
		{"baseline-presence", map[string]any{"lastSeen": now, "connection": map[string]any{"gateway": "scale"},
			"conditions": []any{map[string]any{"type": mdmv1alpha1.DeviceConditionConnected, "status": "True",
				"reason": "StreamOpen", "message": "The agent holds a stream", "lastTransitionTime": now}}}},
	}
	began = time.Now()
	for _, s := range statuses {
		err := forAll(n, func(i int) error {
			d := object(i)
			d.Object["status"] = s.status
			return h.client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(d), client.FieldOwner(s.manager), client.ForceOwnership)
		})
		if err != nil {
			return b, fmt.Errorf("applying the status of Device-shaped objects: %w", err)
		}
	}
	b.StatusTime = time.Since(began)
	return b, nil
}
