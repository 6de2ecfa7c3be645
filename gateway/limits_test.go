package gateway

import (
	"os"
	"path/filepath"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// The gateway refuses reports over the limits the status schema enforces;
// if the two drift apart, a report the gateway let through could make every
// later status write of the Device fail.
func TestReportLimitsAreTheStatusSchemas(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "config", "crd", "bases", "mdm.kubemdm.io_devices.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(raw, crd); err != nil {
		t.Fatal(err)
	}
	status := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["status"].Properties
	for _, tc := range []struct {
		path []string
		max  int
	}{
		{[]string{"kiosk", "app"}, mdmv1alpha1.MaxReportedField},
		{[]string{"lostMode", "message"}, mdmv1alpha1.MaxReportedMessage},
		{[]string{"lostMode", "phoneNumber"}, mdmv1alpha1.MaxReportedField},
		{[]string{"lostMode", "footnote"}, mdmv1alpha1.MaxReportedField},
		{[]string{"configurations", "*", "name"}, mdmv1alpha1.MaxReportedName},
		{[]string{"configurations", "*", "message"}, mdmv1alpha1.MaxReportedMessage},
		{[]string{"certificates", "*", "subject"}, mdmv1alpha1.MaxReportedMessage},
		{[]string{"certificates", "*", "serialNumber"}, mdmv1alpha1.MaxReportedField},
		{[]string{"certificates", "*", "source"}, mdmv1alpha1.MaxReportedName},
		{[]string{"deviceInfo", "model"}, mdmv1alpha1.MaxReportedField},
		{[]string{"deviceInfo", "osVersion"}, mdmv1alpha1.MaxReportedField},
	} {
		props := status
		var leaf apiextensionsv1.JSONSchemaProps
		for i, p := range tc.path {
			if p == "*" {
				props = leaf.Items.Schema.Properties
				continue
			}
			leaf = props[p]
			if i < len(tc.path)-1 && tc.path[i+1] != "*" {
				props = leaf.Properties
			}
		}
		if leaf.MaxLength == nil || int(*leaf.MaxLength) != tc.max {
			t.Errorf("status.%v has maxLength %v; the gateway's limit is %d", tc.path, leaf.MaxLength, tc.max)
		}
		if len(leaf.XValidations) > 0 || leaf.Pattern != "" {
			t.Errorf("status.%v carries rules of a desired state (%v %q); a report must only be bounded", tc.path, leaf.XValidations, leaf.Pattern)
		}
	}
	for _, obj := range []string{"kiosk", "lostMode"} {
		if rules := status[obj].XValidations; len(rules) > 0 {
			t.Errorf("status.%s has rules %v: an observation must not be refused for breaking the desired state's rules", obj, rules)
		}
	}
}
