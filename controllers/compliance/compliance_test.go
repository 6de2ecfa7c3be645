package compliance

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func TestOlder(t *testing.T) {
	for _, tc := range []struct {
		v, min string
		want   bool
	}{
		{"17.4", "17.10", true},
		{"17.10", "17.4", false},
		{"17.4", "17.4", false},
		{"17.4.1", "17.4", false},
		{"17", "17.0.1", true},
		{"6.1.0-13-amd64", "6.1", false},
		{"", "1", true},
		{"beta", "1", true},
	} {
		if got := Older(tc.v, tc.min); got != tc.want {
			t.Errorf("Older(%q, %q) = %v, want %v", tc.v, tc.min, got, tc.want)
		}
	}
}

func TestEvaluate(t *testing.T) {
	now := time.Now()
	seen := metav1.NewTime(now.Add(-time.Minute))
	base := func() *mdmv1alpha1.Device {
		return &mdmv1alpha1.Device{
			Spec: mdmv1alpha1.DeviceSpec{Configurations: []mdmv1alpha1.ConfigurationAssignment{
				{Name: "wifi"}, {Name: "vpn", MinOSVersion: "17.2"}, {Name: "old", Excluded: true}}},
			Status: mdmv1alpha1.DeviceStatus{LastSeen: &seen, DeviceInfo: &mdmv1alpha1.DeviceInfo{OSVersion: "17.4"},
				Configurations: []mdmv1alpha1.DeviceConfigurationStatus{{Name: "wifi", State: "Applied"}, {Name: "vpn", State: "Applied"}}},
		}
	}
	for name, tc := range map[string]struct {
		mutate  func(*mdmv1alpha1.Device)
		state   mdmv1alpha1.ComplianceState
		reasons int
	}{
		"compliant":       {func(*mdmv1alpha1.Device) {}, mdmv1alpha1.ComplianceCompliant, 0},
		"never reported":  {func(d *mdmv1alpha1.Device) { d.Status = mdmv1alpha1.DeviceStatus{} }, mdmv1alpha1.ComplianceUnknown, 1},
		"old OS":          {func(d *mdmv1alpha1.Device) { d.Status.DeviceInfo.OSVersion = "16.7" }, mdmv1alpha1.ComplianceNonCompliant, 1},
		"failed config":   {func(d *mdmv1alpha1.Device) { d.Status.Configurations[0].State = "Failed" }, mdmv1alpha1.ComplianceNonCompliant, 1},
		"missing config":  {func(d *mdmv1alpha1.Device) { d.Status.Configurations = d.Status.Configurations[1:] }, mdmv1alpha1.ComplianceNonCompliant, 1},
		"not seen lately": {func(d *mdmv1alpha1.Device) { d.Status.LastSeen = &metav1.Time{Time: now.Add(-48 * time.Hour)} }, mdmv1alpha1.ComplianceNonCompliant, 1},
		// lastSeen of a streaming device is when its stream opened.
		"connected for two days": {func(d *mdmv1alpha1.Device) {
			d.Status.LastSeen = &metav1.Time{Time: now.Add(-48 * time.Hour)}
			d.Status.Conditions = []metav1.Condition{{Type: mdmv1alpha1.DeviceConditionConnected, Status: metav1.ConditionTrue}}
		}, mdmv1alpha1.ComplianceCompliant, 0},
		// 64 configurations, each missing and requiring a newer OS, and not
		// seen: 129 reasons, cut to the schema's 32.
		"more reasons than the status holds": {func(d *mdmv1alpha1.Device) {
			d.Spec.Configurations = nil
			for i := range 64 {
				d.Spec.Configurations = append(d.Spec.Configurations, mdmv1alpha1.ConfigurationAssignment{Name: fmt.Sprintf("c%d", i), MinOSVersion: "99"})
			}
			d.Status.LastSeen = &metav1.Time{Time: now.Add(-48 * time.Hour)}
		}, mdmv1alpha1.ComplianceNonCompliant, mdmv1alpha1.MaxComplianceReasons},
	} {
		d := base()
		tc.mutate(d)
		var rules []Rules
		for _, a := range d.Spec.Configurations {
			if !a.Excluded {
				rules = append(rules, Rules{Configuration: a.Name})
			}
		}
		state, reasons, _ := Evaluate(d, rules, now, 24*time.Hour)
		if state != tc.state || len(reasons) != tc.reasons {
			t.Errorf("%s: %s %v, want %s with %d reasons", name, state, reasons, tc.state, tc.reasons)
		}
		if len(reasons) == mdmv1alpha1.MaxComplianceReasons && reasons[len(reasons)-1] != "and 98 more reasons" {
			t.Errorf("%s: the last reason is %q, want the count of those left out", name, reasons[len(reasons)-1])
		}
	}
}

func TestRules(t *testing.T) {
	now := time.Now()
	seen := metav1.NewTime(now)
	for name, tc := range map[string]struct {
		rules    mdmv1alpha1.ComplianceRules
		security *mdmv1alpha1.DeviceSecurity
		os       string
		reasons  []string
	}{
		"every rule holds": {mdmv1alpha1.ComplianceRules{MinOSVersion: "17.2", RequirePasscode: true, RequireEncryption: true},
			&mdmv1alpha1.DeviceSecurity{PasscodeSet: true, Encrypted: true}, "17.10", nil},
		"an old OS": {mdmv1alpha1.ComplianceRules{MinOSVersion: "17.2"}, nil, "17.1",
			[]string{`OS version "17.1" is older than 17.2, which configuration baseline requires`}},
		"no screen lock": {mdmv1alpha1.ComplianceRules{RequirePasscode: true}, &mdmv1alpha1.DeviceSecurity{Encrypted: true}, "1",
			[]string{"the device has no screen lock; configuration baseline requires a screen lock"}},
		"not encrypted": {mdmv1alpha1.ComplianceRules{RequireEncryption: true}, &mdmv1alpha1.DeviceSecurity{PasscodeSet: true}, "1",
			[]string{"the device has storage that is not encrypted; configuration baseline requires encrypted storage"}},
		"not reported": {mdmv1alpha1.ComplianceRules{RequireEncryption: true}, nil, "1",
			[]string{"the device does not report whether it has encrypted storage, which configuration baseline requires"}},
	} {
		d := &mdmv1alpha1.Device{Status: mdmv1alpha1.DeviceStatus{LastSeen: &seen, Security: tc.security,
			DeviceInfo:     &mdmv1alpha1.DeviceInfo{OSVersion: tc.os},
			Configurations: []mdmv1alpha1.DeviceConfigurationStatus{{Name: "baseline", State: "Applied"}}}}
		state, reasons, _ := Evaluate(d, []Rules{{Configuration: "baseline", ComplianceRules: tc.rules}}, now, time.Hour)
		if !slices.Equal(reasons, tc.reasons) || (state == mdmv1alpha1.ComplianceCompliant) != (tc.reasons == nil) {
			t.Errorf("%s: %s %q, want %q", name, state, reasons, tc.reasons)
		}
	}
}

// TestEvaluateRevisions: a device is compliant only at the revision each
// configuration is due at, selector-targeted ones included; a device still
// within its apply grace is looked at again when the grace ends.
func TestEvaluateRevisions(t *testing.T) {
	now := time.Now()
	seen := metav1.NewTime(now)
	soon, past := now.Add(5*time.Minute), now.Add(-time.Minute)
	for name, tc := range map[string]struct {
		rows    []mdmv1alpha1.DeviceConfigurationStatus
		rule    Rules
		reasons []string
		recheck time.Duration
	}{
		"at the due revision": {[]mdmv1alpha1.DeviceConfigurationStatus{{Name: "wifi", State: "Applied", Revision: "r2"}},
			Rules{Configuration: "wifi", Revision: "r2", Deadline: past}, nil, 0},
		"behind, within the grace": {[]mdmv1alpha1.DeviceConfigurationStatus{{Name: "wifi", State: "Applied", Revision: "r1"}},
			Rules{Configuration: "wifi", Revision: "r2", Deadline: soon}, nil, 5 * time.Minute},
		"behind, past the grace": {[]mdmv1alpha1.DeviceConfigurationStatus{{Name: "wifi", State: "Applied", Revision: "r1"}},
			Rules{Configuration: "wifi", Revision: "r2", Deadline: past}, []string{"configuration wifi is at revision r1; revision r2 is due"}, 0},
		"selected, never reported, past the grace": {nil,
			Rules{Configuration: "wifi", Revision: "r2", Deadline: past}, []string{"configuration wifi is not reported by the device"}, 0},
		"selected a moment ago": {nil, Rules{Configuration: "wifi", Revision: "r2", Deadline: soon}, nil, 5 * time.Minute},
		"failed, within the grace": {[]mdmv1alpha1.DeviceConfigurationStatus{{Name: "wifi", State: "Failed", Revision: "r2"}},
			Rules{Configuration: "wifi", Revision: "r2", Deadline: soon}, []string{"configuration wifi is Failed"}, 0},
		"failed, naming its failed settings": {[]mdmv1alpha1.DeviceConfigurationStatus{{Name: "wifi", State: "Failed", Revision: "r2", Settings: []mdmv1alpha1.SettingStatus{
			{Path: "wifi[office]", Reason: mdmv1alpha1.SettingFailed}, {Path: "passcode.minLength", Reason: mdmv1alpha1.SettingOverridden}}}},
			Rules{Configuration: "wifi", Revision: "r2", Deadline: past}, []string{"configuration wifi is Failed: wifi[office]"}, 0},
		"failed, counting the settings past the third": {[]mdmv1alpha1.DeviceConfigurationStatus{{Name: "files", State: "Failed", Revision: "r2", Settings: []mdmv1alpha1.SettingStatus{
			{Path: "files[/a]", Reason: mdmv1alpha1.SettingFailed}, {Path: "files[/b]", Reason: mdmv1alpha1.SettingFailed},
			{Path: "files[/c]", Reason: mdmv1alpha1.SettingFailed}, {Path: "files[/d]", Reason: mdmv1alpha1.SettingFailed}}}},
			Rules{Configuration: "files", Revision: "r2", Deadline: past}, []string{"configuration files is Failed: files[/a], files[/b], files[/c] and 1 more"}, 0},
		"behind, already judged, a new grace": {[]mdmv1alpha1.DeviceConfigurationStatus{{Name: "wifi", State: "Applied", Revision: "r1"}},
			Rules{Configuration: "wifi", Revision: "r2", Deadline: soon}, []string{"configuration wifi is at revision r1; revision r2 is due"}, 0},
		"not yet admitted: any revision": {[]mdmv1alpha1.DeviceConfigurationStatus{{Name: "wifi", State: "Applied", Revision: "r0"}},
			Rules{Configuration: "wifi"}, nil, 0},
		"overridden at another revision": {[]mdmv1alpha1.DeviceConfigurationStatus{{Name: "wifi", State: "Overridden", Revision: "r1"}},
			Rules{Configuration: "wifi", Revision: "r2", Deadline: past}, nil, 0},
	} {
		d := &mdmv1alpha1.Device{Status: mdmv1alpha1.DeviceStatus{LastSeen: &seen, DeviceInfo: &mdmv1alpha1.DeviceInfo{OSVersion: "1"}, Configurations: tc.rows}}
		if strings.Contains(name, "already judged") {
			d.Status.Compliance = &mdmv1alpha1.ComplianceStatus{State: mdmv1alpha1.ComplianceNonCompliant, Reasons: tc.reasons}
		}
		_, reasons, recheck := Evaluate(d, []Rules{tc.rule}, now, time.Hour)
		if !slices.Equal(reasons, tc.reasons) || recheck.Round(time.Second) != tc.recheck {
			t.Errorf("%s: %q, recheck %s; want %q, recheck %s", name, reasons, recheck, tc.reasons, tc.recheck)
		}
	}
}

// The cap must be the schema's: a longer list would make every later status
// write of the Device fail.
func TestCapIsTheSchemasMaxItems(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "mdm.kubemdm.io_devices.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(raw, crd); err != nil {
		t.Fatal(err)
	}
	reasons := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["status"].Properties["compliance"].Properties["reasons"]
	if reasons.MaxItems == nil || *reasons.MaxItems != mdmv1alpha1.MaxComplianceReasons {
		t.Errorf("status.compliance.reasons has maxItems %v, MaxComplianceReasons is %d", reasons.MaxItems, mdmv1alpha1.MaxComplianceReasons)
	}
}
