package configset

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// Target is one configuration that targets a device, by its deviceSelector
// or by name in the Device's spec.configurations.
type Target struct {
	Name string
	// Config is nil when the Device names a Configuration that does not
	// exist.
	Config *mdmv1alpha1.Configuration
	// Priority is the Configuration's, or the assignment's override.
	Priority    int32
	Excluded    bool
	Unsupported bool
}

// applies reports whether the device gets the configuration's settings.
func (t Target) applies() bool {
	return t.Config != nil && !t.Excluded && !t.Unsupported
}

// Targets returns the configurations that target a device, sorted by name.
// configs are the Configurations of the device's namespace.
func Targets(d *mdmv1alpha1.Device, configs []mdmv1alpha1.Configuration) []Target {
	byName := map[string]*mdmv1alpha1.Configuration{}
	targets := map[string]*Target{}
	for i := range configs {
		c := &configs[i]
		if c.DeletionTimestamp != nil {
			continue
		}
		byName[c.Name] = c
		if c.Spec.DeviceSelector == nil {
			continue
		}
		selector, err := metav1.LabelSelectorAsSelector(c.Spec.DeviceSelector)
		if err != nil || !selector.Matches(labels.Set(d.Labels)) {
			// The schema keeps selectors well formed; one that is not
			// selects nothing rather than everything.
			continue
		}
		targets[c.Name] = &Target{Name: c.Name, Config: c, Priority: c.Spec.Priority}
	}
	for _, a := range d.Spec.Configurations {
		t := targets[a.Name]
		if t == nil {
			t = &Target{Name: a.Name, Config: byName[a.Name]}
			if t.Config != nil {
				t.Priority = t.Config.Spec.Priority
			}
			targets[a.Name] = t
		}
		t.Excluded = a.Excluded
		if a.Priority != nil {
			t.Priority = *a.Priority
		}
	}
	out := make([]Target, 0, len(targets))
	for _, t := range targets {
		if t.Config != nil {
			t.Unsupported = len(t.Config.Spec.Platforms) > 0 && !slices.Contains(t.Config.Spec.Platforms, d.Spec.Platform)
		}
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b Target) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Applied is a configuration the device gets, with the settings it won.
type Applied struct {
	Target
	// Won are the settings the device takes from this configuration; nil
	// when it lost every one.
	Won *mdmv1alpha1.ConfigurationSettings
	// Lost are the settings another configuration won, with its name.
	Lost []mdmv1alpha1.SettingStatus
}

// Merge decides, setting by setting, which configuration a device takes
// each from: the higher priority, then the older Configuration, then the
// lower name. It returns the configurations that apply (not excluded, not
// of another platform, existing), sorted by name.
func Merge(targets []Target) ([]Applied, error) {
	var order []Target
	for _, t := range targets {
		if t.applies() {
			order = append(order, t)
		}
	}
	slices.SortFunc(order, func(a, b Target) int {
		return cmp.Or(
			cmp.Compare(b.Priority, a.Priority),
			a.Config.CreationTimestamp.Time.Compare(b.Config.CreationTimestamp.Time),
			strings.Compare(a.Name, b.Name))
	})
	winner := map[string]string{}
	out := make([]Applied, 0, len(order))
	for _, t := range order {
		settings, err := flatten(&t.Config.Spec.Settings)
		if err != nil {
			return nil, fmt.Errorf("configuration %s: %w", t.Name, err)
		}
		a := Applied{Target: t}
		var won []setting
		for _, path := range sortedKeys(settings) {
			if w, taken := winner[path]; taken {
				a.Lost = append(a.Lost, mdmv1alpha1.SettingStatus{Path: path, Reason: mdmv1alpha1.SettingOverridden,
					Message: fmt.Sprintf("Configuration %s sets it", w)})
				continue
			}
			winner[path] = t.Name
			won = append(won, settings[path])
		}
		if len(won) > 0 {
			if a.Won, err = unflatten(won); err != nil {
				return nil, fmt.Errorf("configuration %s: %w", t.Name, err)
			}
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Applied) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Digest identifies what a device applies: each configuration's name,
// revision and the settings it won there; "" for none. revisions maps a configuration
// name to its revision.
func Digest(applied []Applied, revisions map[string]string) string {
	h := sha256.New()
	empty := true
	for _, a := range applied {
		if a.Won == nil {
			continue
		}
		empty = false
		settings, _ := flatten(a.Won)
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00", a.Name, revisions[a.Name], strings.Join(sortedKeys(settings), "\x00"))
	}
	if empty {
		// An agent that never applied a configuration holds "".
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))[:20]
}
