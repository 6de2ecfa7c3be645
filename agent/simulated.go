package agent

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// allActions are the DeviceAction action names.
var allActions = []string{"Lock", "Unlock", "Wipe", "Retire", "Unenroll", "Restart", "Sync", "SendMessage",
	"LogoutUser", "UpdateOS", "ReinstallConfiguration", "SyncCompliance", "EnterKiosk", "ExitKiosk",
	"EnableLostMode", "DisableLostMode", "Relinquish", "CancelRelinquish", "Disable", "Reenable", "Deprovision"}

// UnenrollSteps are the steps of Unenroll, in the order the source API runs them.
var UnenrollSteps = []string{"DisableKioskMode", "DeleteDownloadedFiles", "UninstallManagedApps", "UninstallMDMService"}

// Simulated is a virtual device. It keeps a model of itself (locked or
// not, kiosk and lost mode, the OS version, boots, the user session, the
// messages it showed, the configurations it installed) that configurations
// and commands change, and it reports what the model shows, never what it
// was asked. Failures are injected per command (FailNext) or per
// configuration, deterministically; FailureRate adds random ones for
// demonstrations. It touches nothing on the host, so tests and `make dev`
// use it.
type Simulated struct {
	Serial       string
	PlatformName string
	Model        string
	OSVersion    string
	Delay        time.Duration
	FailureRate  float64
	// FailConfigurations names configurations that fail to install.
	FailConfigurations map[string]bool
	// FailSettings names setting paths (passcode.minLength,
	// wifi[office]) the device cannot apply.
	FailSettings map[string]bool
	// UnsupportedSettings names setting paths the device cannot apply at
	// all, as a platform without that feature: it leaves them alone and
	// reports them Unsupported, which does not fail their configuration.
	UnsupportedSettings map[string]bool
	// Unencrypted makes the device report its storage not encrypted.
	Unencrypted bool
	// FailStep names an Unenroll step that fails.
	FailStep string
	// RefuseOwners names owners the device will not take.
	RefuseOwners map[string]bool
	// ExecutionLog, when set, is a file each command run is appended to
	// (id and action, synced) before its result is returned, so that what
	// the device ran can be counted across a kill -9 of the agent.
	ExecutionLog string

	mu       sync.Mutex
	executed []*agentv1.Command
	config   *agentv1.DesiredConfig
	state    DeviceModel
	failNext map[string][]Result
}

// DeviceModel is what a simulated device observes about itself.
type DeviceModel struct {
	Locked    bool
	Disabled  bool
	Kiosk     *agentv1.Kiosk
	LostMode  *agentv1.LostMode
	OSVersion string
	// Boots counts restarts.
	Boots int
	// SessionEnded is true once LogoutUser ended the user's session, until
	// the next boot.
	SessionEnded bool
	// Messages are the titles and bodies shown, in order.
	Messages []string
	// Installed are the configurations installed, with how many times
	// each was (re)installed.
	Installed map[string]int
	// Revisions are the revisions of the installed configurations.
	Revisions map[string]string
	// AppliedTimes are when each configuration was last written: its
	// revision applied, or reinstalled.
	AppliedTimes map[string]time.Time
	// Settings are the settings in place, by path, with their value.
	Settings map[string]string
	// Certificates are the certificates configurations installed, by
	// name, with the configuration that installed each.
	Certificates map[string]string
	Owner        string
	// Wiped and Released (retired, unenrolled, deprovisioned) end the
	// device's managed life.
	Wiped, Released bool
}

func (s *Simulated) init() {
	if s.state.Installed == nil {
		s.state.Installed = map[string]int{}
		s.state.Revisions = map[string]string{}
		s.state.AppliedTimes = map[string]time.Time{}
		s.state.Settings = map[string]string{}
		s.state.Certificates = map[string]string{}
		s.state.OSVersion = s.OSVersion
	}
}

// Observe returns a copy of the device's model.
func (s *Simulated) Observe() DeviceModel {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	m := s.state
	m.Messages = slices.Clone(m.Messages)
	m.Installed = maps.Clone(s.state.Installed)
	m.Revisions = maps.Clone(s.state.Revisions)
	m.AppliedTimes = maps.Clone(s.state.AppliedTimes)
	m.Settings = maps.Clone(s.state.Settings)
	m.Certificates = maps.Clone(s.state.Certificates)
	m.Kiosk = proto.Clone(s.state.Kiosk).(*agentv1.Kiosk)
	m.LostMode = proto.Clone(s.state.LostMode).(*agentv1.LostMode)
	return m
}

// Disabled reports whether the device is disabled (unusable) now.
func (s *Simulated) Disabled() bool { return s.Observe().Disabled }

// FailNext makes the next execution of action fail with code and message,
// once; calls queue up.
func (s *Simulated) FailNext(action string, code int32, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext == nil {
		s.failNext = map[string][]Result{}
	}
	s.failNext[action] = append(s.failNext[action], Result{Code: code, Message: message})
}

// Info describes the simulated device, with the OS version it runs now.
func (s *Simulated) Info() *agentv1.DeviceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	return &agentv1.DeviceInfo{SerialNumber: s.Serial, Platform: s.PlatformName, Model: s.Model,
		Manufacturer: "kubemdm simulator", OsVersion: s.state.OSVersion, AgentVersion: Version, StorageBytes: 64 << 30}
}

// FailConfiguration makes a configuration fail to install from now on,
// while the device runs.
func (s *Simulated) FailConfiguration(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.FailConfigurations == nil {
		s.FailConfigurations = map[string]bool{}
	}
	s.FailConfigurations[name] = true
}

// FailSetting makes a setting path fail to apply, or apply again, from
// now on, while the device runs.
func (s *Simulated) FailSetting(path string, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.FailSettings == nil {
		s.FailSettings = map[string]bool{}
	}
	s.FailSettings[path] = fail
}

// UnsupportSetting makes a setting path one the device cannot apply, or
// can again, from now on, while the device runs.
func (s *Simulated) UnsupportSetting(path string, unsupported bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.UnsupportedSettings == nil {
		s.UnsupportedSettings = map[string]bool{}
	}
	s.UnsupportedSettings[path] = unsupported
}

// Executed returns the commands the device ran, in order.
func (s *Simulated) Executed() []*agentv1.Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*agentv1.Command(nil), s.executed...)
}

// Config returns the last configuration received.
func (s *Simulated) Config() *agentv1.DesiredConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.config
}

// Apply converges the model to the configuration, as far as the device
// can, and reports what it then shows.
func (s *Simulated) Apply(_ context.Context, cfg *agentv1.DesiredConfig) *agentv1.Facts {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if cfg.GetConfigurationsHeld() {
		// The gateway cannot render the configurations now: keep them.
		cfg = proto.CloneOf(cfg)
		cfg.Configurations, cfg.ConfigurationsDigest = s.config.GetConfigurations(), s.config.GetConfigurationsDigest()
	}
	s.config = cfg
	if s.state.Wiped || s.state.Released {
		// Out of management: it takes nothing and reports what is left.
		return s.factsLocked()
	}
	if !s.RefuseOwners[cfg.GetOwner()] {
		s.state.Owner = cfg.GetOwner()
	}
	switch cfg.GetState() {
	case "Disabled":
		s.state.Disabled = true
	case "Active":
		s.state.Disabled = false
	}
	if k := cfg.GetKiosk(); k != nil {
		s.state.Kiosk = &agentv1.Kiosk{Enabled: k.GetEnabled(), App: k.GetApp()}
	}
	if l := cfg.GetLostMode(); l != nil {
		s.state.LostMode = proto.Clone(l).(*agentv1.LostMode)
	}
	s.applyConfigurations(cfg.GetConfigurations())
	facts := s.factsLocked()
	facts.Configurations = s.configurationStates()
	return facts
}

// applyConfigurations puts every setting of the configurations in place,
// except those the device fails on, and removes the settings and
// configurations no longer there.
func (s *Simulated) applyConfigurations(configs []*agentv1.Configuration) {
	desired := map[string]string{}
	certs := map[string]string{}
	for _, c := range configs {
		failing := s.FailConfigurations[c.GetName()]
		for path, v := range settingValues(c.GetSettings()) {
			if s.UnsupportedSettings[path] {
				// Nothing on the device to hold it.
				continue
			}
			if failing || s.FailSettings[path] {
				// A setting the device could not take keeps what it had.
				if old, ok := s.state.Settings[path]; ok {
					desired[path] = old
				}
				continue
			}
			desired[path] = v
		}
		if !failing {
			for _, cert := range c.GetSettings().GetCertificates() {
				if !s.FailSettings["certificates["+cert.GetName()+"]"] {
					certs[cert.GetName()] = c.GetName()
				}
			}
		}
	}
	s.state.Settings, s.state.Certificates = desired, certs
	installed := map[string]int{}
	revisions := map[string]string{}
	for _, c := range configs {
		installed[c.GetName()] = max(s.state.Installed[c.GetName()], 1)
		revisions[c.GetName()] = c.GetRevision()
	}
	applied := map[string]time.Time{}
	for _, c := range configs {
		applied[c.GetName()] = s.state.AppliedTimes[c.GetName()]
		if s.state.Revisions[c.GetName()] != c.GetRevision() || applied[c.GetName()].IsZero() {
			applied[c.GetName()] = time.Now()
		}
	}
	s.state.Installed, s.state.Revisions, s.state.AppliedTimes = installed, revisions, applied
}

// configurationStates says, for each configuration of the last
// DesiredConfig, whether the model holds every one of its settings.
func (s *Simulated) configurationStates() []*agentv1.ConfigurationState {
	var states []*agentv1.ConfigurationState
	for _, c := range s.config.GetConfigurations() {
		st := &agentv1.ConfigurationState{Name: c.GetName(), State: "Applied", Revision: s.state.Revisions[c.GetName()]}
		if t := s.state.AppliedTimes[c.GetName()]; !t.IsZero() {
			st.AppliedTime = timestamppb.New(t)
		}
		want := settingValues(c.GetSettings())
		failed := 0
		for _, path := range slices.Sorted(maps.Keys(want)) {
			switch {
			case s.UnsupportedSettings[path]:
				st.Settings = append(st.Settings, &agentv1.SettingState{Path: path, Reason: "Unsupported",
					Message: fmt.Sprintf("the simulated %s device has no %s", s.PlatformName, path)})
			case s.state.Settings[path] != want[path]:
				failed++
				st.Settings = append(st.Settings, &agentv1.SettingState{Path: path, Reason: "Failed", Message: "simulated failure to apply " + path,
					Current: s.state.Settings[path]})
			}
		}
		if failed > 0 {
			st.State, st.Message = "Failed", fmt.Sprintf("%d of %d settings could not be applied", failed, len(want))
		}
		states = append(states, st)
	}
	return states
}

// Facts reports what the device shows now, after a command changed it.
func (s *Simulated) Facts() *agentv1.Facts {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	facts := s.factsLocked()
	if s.state.Wiped || s.state.Released {
		return facts
	}
	facts.Configurations = s.configurationStates()
	return facts
}

func (s *Simulated) factsLocked() *agentv1.Facts {
	facts := &agentv1.Facts{
		Owner:      s.state.Owner,
		Kiosk:      proto.Clone(s.state.Kiosk).(*agentv1.Kiosk),
		LostMode:   proto.Clone(s.state.LostMode).(*agentv1.LostMode),
		State:      map[bool]string{true: "Disabled", false: "Active"}[s.state.Disabled],
		DeviceInfo: &agentv1.DeviceInfo{Platform: s.PlatformName, Model: s.Model, Manufacturer: "kubemdm simulator", OsVersion: s.state.OSVersion, AgentVersion: Version, StorageBytes: 64 << 30},
	}
	// The user sets a screen lock once a passcode policy asks for one.
	passcode := slices.ContainsFunc(slices.Collect(maps.Keys(s.state.Settings)), func(p string) bool { return strings.HasPrefix(p, "passcode.") })
	facts.Security = &agentv1.Security{PasscodeSet: passcode, Encrypted: !s.Unencrypted}
	for name, source := range s.state.Certificates {
		facts.Certificates = append(facts.Certificates, &agentv1.Certificate{
			Subject: "CN=" + name, SerialNumber: fmt.Sprintf("%x", sha256.Sum256([]byte(name)))[:16], Source: source})
	}
	slices.SortFunc(facts.Certificates, func(a, b *agentv1.Certificate) int { return strings.Compare(a.GetSource(), b.GetSource()) })
	return facts
}

// Executors handle every action by changing the model.
func (s *Simulated) Executors() map[string]Executor {
	out := map[string]Executor{}
	for _, a := range allActions {
		out[a] = s.run
	}
	return out
}

func (s *Simulated) run(ctx context.Context, cmd *agentv1.Command) Result {
	if s.Delay > 0 {
		select {
		case <-ctx.Done():
			return Result{Code: CodeUnknown, Message: "interrupted"}
		case <-time.After(s.Delay):
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	s.executed = append(s.executed, cmd)
	if err := s.logExecution(cmd); err != nil {
		return Result{Code: CodeInternal, Message: err.Error()}
	}
	action := cmd.GetAction()
	if queued := s.failNext[action]; len(queued) > 0 {
		s.failNext[action] = queued[1:]
		return queued[0]
	}
	if action == "Unenroll" {
		return s.unenrollLocked()
	}
	if s.FailureRate > 0 && rand.Float64() < s.FailureRate {
		return Result{Code: CodeInternal, Message: fmt.Sprintf("simulated failure of %s", action)}
	}
	return s.changeLocked(cmd)
}

func (s *Simulated) logExecution(cmd *agentv1.Command) error {
	if s.ExecutionLog == "" {
		return nil
	}
	f, err := os.OpenFile(s.ExecutionLog, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("recording the execution: %w", err)
	}
	_, err = fmt.Fprintf(f, "%s %s\n", cmd.GetId(), cmd.GetAction())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("recording the execution: %w", err)
	}
	return nil
}

// changeLocked is what each command does to the model. A command whose
// precondition the model does not meet fails as a real device would.
func (s *Simulated) changeLocked(cmd *agentv1.Command) Result {
	m, p := &s.state, cmd.GetParameters()
	switch cmd.GetAction() {
	case "Lock":
		m.Locked = true
	case "Unlock":
		m.Locked = false
	case "Wipe":
		*m = DeviceModel{Wiped: true, OSVersion: m.OSVersion, Boots: m.Boots + 1, Installed: map[string]int{}}
	case "Retire", "Deprovision":
		m.Released, m.Installed, m.Kiosk, m.LostMode = true, map[string]int{}, nil, nil
	case "Restart":
		m.Boots++
		m.SessionEnded = false
	case "SendMessage":
		m.Messages = append(m.Messages, p.GetMessageTitle()+": "+p.GetMessageBody())
	case "LogoutUser":
		if m.SessionEnded {
			return Result{Code: CodeFailedPrecondition, Message: "no user is logged in"}
		}
		m.SessionEnded = true
	case "UpdateOS":
		want := p.GetOsVersion()
		if want == "" {
			want = nextVersion(m.OSVersion)
		}
		if compareVersions(want, m.OSVersion) < 0 {
			return Result{Code: CodeFailedPrecondition, Message: fmt.Sprintf("the device runs %s, newer than %s", m.OSVersion, want)}
		}
		m.OSVersion = want
		m.Boots++
	case "ReinstallConfiguration":
		for _, name := range p.GetConfigurations() {
			if m.Installed[name] == 0 {
				return Result{Code: 5, Message: fmt.Sprintf("configuration %s is not installed", name)}
			}
		}
		for _, name := range p.GetConfigurations() {
			m.Installed[name]++
			m.AppliedTimes[name] = time.Now()
		}
	case "EnterKiosk":
		m.Kiosk = &agentv1.Kiosk{Enabled: true, App: p.GetKioskApp()}
	case "ExitKiosk":
		m.Kiosk = &agentv1.Kiosk{Enabled: false}
	case "EnableLostMode":
		m.LostMode = proto.Clone(p.GetLostMode()).(*agentv1.LostMode)
		if m.LostMode == nil {
			m.LostMode = &agentv1.LostMode{}
		}
		m.LostMode.Enabled = true
	case "DisableLostMode":
		m.LostMode = &agentv1.LostMode{Enabled: false}
	case "Disable":
		m.Disabled = true
	case "Reenable":
		m.Disabled = false
	}
	return Result{Code: CodeOK, Message: fmt.Sprintf("%s done", cmd.GetAction())}
}

func (s *Simulated) unenrollLocked() Result {
	var steps []*agentv1.Step
	for _, name := range UnenrollSteps {
		if name == s.FailStep {
			steps = append(steps, &agentv1.Step{Name: name, Outcome: agentv1.Outcome_OUTCOME_FAILED, Message: "simulated failure"})
			return Result{Code: CodeInternal, Message: "unenroll failed at " + name, Steps: steps}
		}
		steps = append(steps, &agentv1.Step{Name: name, Outcome: agentv1.Outcome_OUTCOME_SUCCEEDED})
	}
	s.state.Released, s.state.Installed, s.state.Kiosk = true, map[string]int{}, nil
	return Result{Code: CodeOK, Message: "unenrolled", Steps: steps}
}

// nextVersion raises the last part of a dotted version: 1.0 to 1.1.
func nextVersion(v string) string {
	parts := strings.Split(v, ".")
	n, err := strconv.Atoi(parts[len(parts)-1])
	if err != nil {
		return v + ".1"
	}
	parts[len(parts)-1] = strconv.Itoa(n + 1)
	return strings.Join(parts, ".")
}

// compareVersions compares dotted versions part by part, numerically.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}
