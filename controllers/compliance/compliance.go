// Package compliance evaluates a Device against the rules its
// configurations bring: every configuration applied, the compliance rules
// of each Configuration that applies to it (OS version, screen lock,
// encryption), and the agent seen recently.
package compliance

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/conditions"
)

// DefaultSeenWindow is how recently an agent must have been seen.
const DefaultSeenWindow = 24 * time.Hour

// DefaultApplyGrace is how long a device may take to apply a revision
// that became due before a row at another one makes it NonCompliant. A
// connected device applies one within seconds; the grace keeps a fleet-wide
// push from flipping every device to NonCompliant and back, two status
// writes per device.
const DefaultApplyGrace = 10 * time.Minute

// Rules is one configuration that applies to the device: the revision the
// device should hold and its compliance rules, if any.
type Rules struct {
	Configuration string
	// Revision is the revision the device should hold; "" takes any.
	Revision string
	// Deadline is when a device that reports another revision, or none,
	// has had its time to apply this one.
	Deadline time.Time
	mdmv1alpha1.ComplianceRules
}

// Evaluate returns the state and the reasons a device is not compliant,
// and how long until a configuration still within its apply grace must be
// looked at again (0 for none). A device that never reported is Unknown.
func Evaluate(d *mdmv1alpha1.Device, rules []Rules, now time.Time, window time.Duration) (mdmv1alpha1.ComplianceState, []string, time.Duration) {
	if d.Status.LastSeen == nil && d.Status.DeviceInfo == nil {
		return mdmv1alpha1.ComplianceUnknown, []string{"the device has not reported yet"}, 0
	}
	if window <= 0 {
		window = DefaultSeenWindow
	}
	var reasons []string
	var recheck time.Duration
	reported := map[string]mdmv1alpha1.DeviceConfigurationStatus{}
	for _, c := range d.Status.Configurations {
		reported[c.Name] = c
		switch c.State {
		case mdmv1alpha1.ConfigurationPending:
			reasons = append(reasons, fmt.Sprintf("configuration %s is %s", c.Name, c.State))
		case mdmv1alpha1.ConfigurationFailed:
			reasons = append(reasons, failedReason(c))
		}
	}
	osVersion := ""
	if d.Status.DeviceInfo != nil {
		osVersion = d.Status.DeviceInfo.OSVersion
	}
	for _, c := range d.Spec.Configurations {
		if !c.Excluded && c.MinOSVersion != "" && Older(osVersion, c.MinOSVersion) {
			reasons = append(reasons, fmt.Sprintf("OS version %q is older than %s, which configuration %s requires", osVersion, c.MinOSVersion, c.Name))
		}
	}
	for _, r := range rules {
		row, ok := reported[r.Configuration]
		behind := ""
		switch {
		case !ok:
			behind = fmt.Sprintf("configuration %s is not reported by the device", r.Configuration)
		case row.State == mdmv1alpha1.ConfigurationApplied && r.Revision != "" && row.Revision != r.Revision:
			behind = fmt.Sprintf("configuration %s is at revision %s; revision %s is due", r.Configuration, row.Revision, r.Revision)
		}
		switch {
		case behind == "":
		case now.Before(r.Deadline) && !judged(d, behind):
			// Still within its grace: looked at again when it ends, or
			// when the device reports.
			if wait := r.Deadline.Sub(now); recheck == 0 || wait < recheck {
				recheck = wait
			}
		default:
			reasons = append(reasons, behind)
		}
		reasons = append(reasons, r.check(osVersion, d.Status.Security)...)
	}
	// A device holding its stream is seen now, whatever lastSeen says:
	// that is written when the connection changes, not while it holds.
	if d.Status.LastSeen != nil && !conditions.IsTrue(d, mdmv1alpha1.DeviceConditionConnected) && now.Sub(d.Status.LastSeen.Time) > window {
		reasons = append(reasons, fmt.Sprintf("the agent was last seen %s ago, more than %s", now.Sub(d.Status.LastSeen.Time).Round(time.Minute), window))
	}
	if len(reasons) > 0 {
		return mdmv1alpha1.ComplianceNonCompliant, capReasons(reasons), recheck
	}
	return mdmv1alpha1.ComplianceCompliant, nil, recheck
}

// judged reports whether the last evaluation already gave the reason: a
// grace that starts again (the next batch of a rollout) does not make a
// device that is behind compliant for a while.
func judged(d *mdmv1alpha1.Device, reason string) bool {
	return d.Status.Compliance != nil && slices.Contains(d.Status.Compliance.Reasons, reason)
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

// failedSettingsNamed is how many failed settings a reason names before it
// counts the rest: enough to act on, short enough for kubectl describe.
const failedSettingsNamed = 3

// failedReason names a failed configuration and the settings the device
// could not apply, so that the reason says what to fix.
func failedReason(c mdmv1alpha1.DeviceConfigurationStatus) string {
	var paths []string
	for _, st := range c.Settings {
		if st.Reason == mdmv1alpha1.SettingFailed && st.Path != "…" {
			paths = append(paths, st.Path)
		}
	}
	reason := fmt.Sprintf("configuration %s is Failed", c.Name)
	switch {
	case len(paths) == 0:
		return reason
	case len(paths) > failedSettingsNamed:
		return fmt.Sprintf("%s: %s and %d more", reason, strings.Join(paths[:failedSettingsNamed], ", "), len(paths)-failedSettingsNamed)
	}
	return fmt.Sprintf("%s: %s", reason, strings.Join(paths, ", "))
}
