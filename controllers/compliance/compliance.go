// Package compliance evaluates a Device against the rules its
// configurations bring: every configuration applied, the compliance rules
// of each Configuration that applies to it (OS version, screen lock,
// encryption), and the agent seen recently.
package compliance

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/conditions"
)

// DefaultSeenWindow is how recently an agent must have been seen.
const DefaultSeenWindow = 24 * time.Hour

// Rules are the compliance rules of one configuration that applies to the
// device.
type Rules struct {
	Configuration string
	mdmv1alpha1.ComplianceRules
}

// Evaluate returns the state and the reasons a device is not compliant.
// A device that never reported is Unknown.
func Evaluate(d *mdmv1alpha1.Device, rules []Rules, now time.Time, window time.Duration) (mdmv1alpha1.ComplianceState, []string) {
	if d.Status.LastSeen == nil && d.Status.DeviceInfo == nil {
		return mdmv1alpha1.ComplianceUnknown, []string{"the device has not reported yet"}
	}
	if window <= 0 {
		window = DefaultSeenWindow
	}
	var reasons []string
	reported := map[string]mdmv1alpha1.DeviceConfigurationStatus{}
	for _, c := range d.Status.Configurations {
		reported[c.Name] = c
		switch c.State {
		case mdmv1alpha1.ConfigurationPending, mdmv1alpha1.ConfigurationFailed:
			reasons = append(reasons, fmt.Sprintf("configuration %s is %s", c.Name, c.State))
		}
	}
	osVersion := ""
	if d.Status.DeviceInfo != nil {
		osVersion = d.Status.DeviceInfo.OSVersion
	}
	for _, c := range d.Spec.Configurations {
		if c.Excluded {
			continue
		}
		if _, ok := reported[c.Name]; !ok {
			reasons = append(reasons, fmt.Sprintf("configuration %s is not reported by the device", c.Name))
		}
		if c.MinOSVersion != "" && Older(osVersion, c.MinOSVersion) {
			reasons = append(reasons, fmt.Sprintf("OS version %q is older than %s, which configuration %s requires", osVersion, c.MinOSVersion, c.Name))
		}
	}
	for _, r := range rules {
		reasons = append(reasons, r.check(osVersion, d.Status.Security)...)
	}
	// A device holding its stream is seen now, whatever lastSeen says:
	// that is written when the connection changes, not while it holds.
	if d.Status.LastSeen != nil && !conditions.IsTrue(d, mdmv1alpha1.DeviceConditionConnected) && now.Sub(d.Status.LastSeen.Time) > window {
		reasons = append(reasons, fmt.Sprintf("the agent was last seen %s ago, more than %s", now.Sub(d.Status.LastSeen.Time).Round(time.Minute), window))
	}
	if len(reasons) > 0 {
		return mdmv1alpha1.ComplianceNonCompliant, capReasons(reasons)
	}
	return mdmv1alpha1.ComplianceCompliant, nil
}

// check returns the rules the device fails, each naming the configuration.
func (r Rules) check(osVersion string, sec *mdmv1alpha1.DeviceSecurity) []string {
	var reasons []string
	if r.MinOSVersion != "" && Older(osVersion, r.MinOSVersion) {
		reasons = append(reasons, fmt.Sprintf("OS version %q is older than %s, which configuration %s requires", osVersion, r.MinOSVersion, r.Configuration))
	}
	for _, rule := range []struct {
		required, holds bool
		what, lacking   string
	}{
		{r.RequirePasscode, sec != nil && sec.PasscodeSet, "a screen lock", "no screen lock"},
		{r.RequireEncryption, sec != nil && sec.Encrypted, "encrypted storage", "storage that is not encrypted"},
	} {
		switch {
		case !rule.required || rule.holds:
		case sec == nil:
			reasons = append(reasons, fmt.Sprintf("the device does not report whether it has %s, which configuration %s requires", rule.what, r.Configuration))
		default:
			reasons = append(reasons, fmt.Sprintf("the device has %s; configuration %s requires %s", rule.lacking, r.Configuration, rule.what))
		}
	}
	return reasons
}

// capReasons keeps the list within the schema's limit, the last entry
// counting what it leaves out.
func capReasons(reasons []string) []string {
	if len(reasons) <= mdmv1alpha1.MaxComplianceReasons {
		return reasons
	}
	kept := reasons[:mdmv1alpha1.MaxComplianceReasons-1]
	return append(kept, fmt.Sprintf("and %d more reasons", len(reasons)-len(kept)))
}

// Older reports whether version is older than minimum, comparing the
// leading numbers of each dot-separated part. An unreadable version is older.
func Older(version, minimum string) bool {
	v, m := strings.Split(version, "."), strings.Split(minimum, ".")
	for i := range max(len(v), len(m)) {
		a, b := part(v, i), part(m, i)
		if a < 0 {
			return true
		}
		if a != b {
			return a < b
		}
	}
	return false
}

// part is the number at the start of parts[i]; 0 when absent, -1 when
// unreadable.
func part(parts []string, i int) int {
	if i >= len(parts) {
		return 0
	}
	digits := parts[i]
	for j, r := range digits {
		if r < '0' || r > '9' {
			digits = digits[:j]
			break
		}
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return -1
	}
	return n
}
