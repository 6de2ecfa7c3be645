package gateway

import (
	"context"

	"fmt"
	appsv1 "k8s.io/api/apps/v1"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/configset"
)

// effective is what a device gets from its configurations, decided from
// the cache: no per-device object and no write.
type effective struct {
	targets []configset.Target
	applied map[string]configset.Applied
	// revisions and settings of the applied configurations that render;
	// broken holds why the others do not.
	revisions map[string]string
	settings  map[string]*agentv1.Settings
	broken    map[string]error
}

// effectiveFor targets, merges and renders a device's configurations.
func (s *Server) effectiveFor(ctx context.Context, d *mdmv1alpha1.Device) (*effective, error) {
	list := &mdmv1alpha1.ConfigurationList{}
	if err := s.cache.List(ctx, list, client.InNamespace(d.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing Configurations: %w", err)
	}
	configs := make([]mdmv1alpha1.Configuration, 0, len(list.Items))
	unreadable := map[string]error{}
	for _, c := range list.Items {
		// A staged Configuration goes out only as the controller
		// published it: the revision it settled, or for a device its
		// rollout has yet to reach, the previous one. Its spec may
		// already say more, which must not reach the fleet unstaged.
		if c.Spec.Rollout != nil && c.Status.Revision != "" {
			rev := c.Status.Revision
			if !configset.Admitted(&c, d.UID) {
				rev = c.Status.Rollout.PreviousRevision
			}
			if settings, err := s.revisionSettings(ctx, &c, rev); err != nil {
				// Until the cache has it, the device's configurations
				// are held where they are.
				unreadable[c.Name] = err
			} else {
				c.Spec.Settings = *settings
			}
		}
		configs = append(configs, c)
	}
	targets := configset.Targets(d, configs)
	applied, err := configset.Merge(targets)
	if err != nil {
		return nil, err
	}
	e := &effective{targets: targets, applied: map[string]configset.Applied{}, revisions: map[string]string{},
		settings: map[string]*agentv1.Settings{}, broken: map[string]error{}}
	payloads := configset.ReaderPayloads{Ctx: ctx, Cache: s.payloads, Namespace: d.Namespace}
	for _, a := range applied {
		e.applied[a.Name] = a
		if err := unreadable[a.Name]; err != nil {
			e.broken[a.Name] = err
			continue
		}
		rev, err := configset.Revision(&a.Config.Spec.Settings, payloads)
		if err == nil && a.Won != nil {
			e.settings[a.Name], err = configset.Render(a.Won, payloads)
		}
		if err != nil {
			e.broken[a.Name] = err
			continue
		}
		e.revisions[a.Name] = rev
	}
	return e, nil
}

// heldDigest stands for "the configurations the agent holds" while they
// cannot be rendered.
const heldDigest = "held"

// revisionSettings are the settings of a Configuration at a revision, kept
// in a ControllerRevision by the Configuration controller.
func (s *Server) revisionSettings(ctx context.Context, c *mdmv1alpha1.Configuration, revision string) (*mdmv1alpha1.ConfigurationSettings, error) {
	cr := &appsv1.ControllerRevision{}
	key := client.ObjectKey{Namespace: c.Namespace, Name: configset.RevisionName(c.Name, revision)}
	if err := s.payloads.Get(ctx, key, cr); err != nil {
		return nil, fmt.Errorf("reading revision %s of Configuration %s: %w", revision, c.Name, err)
	}
	return configset.SettingsOf(cr)
}

// render is the DesiredConfig of a device: its spec and the settings each
// configuration won on it. While a configuration cannot be read (a Secret
// it names is missing or not labelled for devices), the configurations are
// held: the device keeps what it has rather than removing one, and still
// gets the rest of its spec, such as lost mode.
func (s *Server) render(ctx context.Context, d *mdmv1alpha1.Device) (*agentv1.DesiredConfig, error) {
	cfg := desiredConfig(d)
	e, err := s.effectiveFor(ctx, d)
	if err != nil {
		return nil, err
	}
	var applied []configset.Applied
	for _, t := range e.targets {
		a, ok := e.applied[t.Name]
		if !ok {
			continue
		}
		if err := e.broken[t.Name]; err != nil {
			s.log.V(1).Info("Holding the configurations back", "device", klog.KObj(d), "configuration", t.Name, "reason", err.Error())
			held := desiredConfig(d)
			held.ConfigurationsHeld, held.ConfigurationsDigest = true, heldDigest
			return held, nil
		}
		applied = append(applied, a)
		if a.Won != nil {
			cfg.Configurations = append(cfg.Configurations, &agentv1.Configuration{Name: t.Name, Revision: e.revisions[t.Name], Settings: e.settings[t.Name]})
		}
	}
	cfg.ConfigurationsDigest = configset.Digest(applied, e.revisions)
	return cfg, nil
}

// configurationRows are Device.status.configurations: one row per
// configuration that targets the device, from what the agent reported and
// what the cache says now.
func (s *Server) configurationRows(ctx context.Context, d *mdmv1alpha1.Device, reported []*agentv1.ConfigurationState) ([]mdmv1alpha1.DeviceConfigurationStatus, error) {
	e, err := s.effectiveFor(ctx, d)
	if err != nil {
		return nil, err
	}
	byName := map[string]*agentv1.ConfigurationState{}
	for _, r := range reported {
		byName[r.GetName()] = r
	}
	rows := make([]mdmv1alpha1.DeviceConfigurationStatus, 0, len(e.targets))
	for _, t := range e.targets {
		row := mdmv1alpha1.DeviceConfigurationStatus{Name: t.Name, State: mdmv1alpha1.ConfigurationPending}
		r := byName[t.Name]
		switch a := e.applied[t.Name]; {
		case t.Config == nil:
			row.Message = fmt.Sprintf("Configuration %s does not exist in namespace %s", t.Name, d.Namespace)
		case t.Excluded:
			row.State, row.Message = mdmv1alpha1.ConfigurationExcluded, "Excluded by the Device's spec.configurations"
		case t.Unsupported:
			row.State = mdmv1alpha1.ConfigurationUnsupported
			row.Message = fmt.Sprintf("For %s devices; this one is %s", joinPlatforms(t.Config.Spec.Platforms), d.Spec.Platform)
		case e.broken[t.Name] != nil:
			row.Message = "Waiting for the Configuration to become readable: " + e.broken[t.Name].Error()
		case a.Won == nil:
			row.State, row.Revision = mdmv1alpha1.ConfigurationOverridden, e.revisions[t.Name]
			row.Message = "Every setting it sets is taken from another configuration"
			row.Settings = a.Lost
		case r == nil || r.GetRevision() != e.revisions[t.Name]:
			row.Revision = r.GetRevision()
			row.Message = fmt.Sprintf("The device has yet to apply revision %s", e.revisions[t.Name])
			row.Settings = a.Lost
		default:
			row.Revision, row.State, row.Message = r.GetRevision(), mdmv1alpha1.ConfigurationState(r.GetState()), r.GetMessage()
			if t := r.GetAppliedTime(); t.IsValid() && t.GetSeconds() > 0 {
				at := metav1.NewTime(t.AsTime().Truncate(time.Second))
				row.AppliedTime = &at
			}
			for _, st := range r.GetSettings() {
				setting := mdmv1alpha1.SettingStatus{Path: st.GetPath(), Reason: mdmv1alpha1.SettingReason(st.GetReason()), Message: st.GetMessage()}
				if valueIsSafe(st.GetPath()) {
					setting.Current = st.GetCurrent()
				}
				row.Settings = append(row.Settings, setting)
			}
			row.Settings = append(row.Settings, a.Lost...)
		}
		row.Settings = capSettings(row.Settings)
		rows = append(rows, row)
	}
	if len(rows) > maxConfigurationRows {
		rows = rows[:maxConfigurationRows]
	}
	return rows, nil
}

// maxConfigurationRows is the MaxItems of Device.status.configurations.
const maxConfigurationRows = 64

// capSettings keeps a row's settings within the schema's limit, the last
// one counting those left out.
func capSettings(s []mdmv1alpha1.SettingStatus) []mdmv1alpha1.SettingStatus {
	if len(s) <= mdmv1alpha1.MaxSettingStatuses {
		return s
	}
	kept := s[:mdmv1alpha1.MaxSettingStatuses-1]
	return append(kept, mdmv1alpha1.SettingStatus{Path: "…", Reason: s[len(kept)].Reason,
		Message: fmt.Sprintf("and %d more settings", len(s)-len(kept))})
}

func joinPlatforms(p []mdmv1alpha1.Platform) string {
	s := make([]string, len(p))
	for i, v := range p {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// onConfigurationChange wakes the streams of the namespace, which render
// their configuration again and send it if it changed for them.
func (s *Server) onConfigurationChange(c *mdmv1alpha1.Configuration) {
	s.wakeNamespace(c.Namespace)
}

// wakeNamespace has every stream of a namespace render its configuration
// again; only those whose configuration changed send it.
func (s *Server) wakeNamespace(namespace string) {
	for _, sub := range s.hub.inNamespace(namespace) {
		sub.offerConfig()
	}
}

// valueIsSafe reports whether a setting's value may be shown in a status:
// one that never comes from a Secret. A Wi-Fi network, a certificate or a
// file may; an agent's word is not taken for it.
func valueIsSafe(path string) bool {
	return strings.HasPrefix(path, "passcode.") || strings.HasPrefix(path, "restrictions.") || path == "systemUpdate"
}
