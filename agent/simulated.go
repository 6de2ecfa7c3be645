package agent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// allActions are the DeviceAction action names.
var allActions = []string{"Lock", "Unlock", "Wipe", "Retire", "Unenroll", "Restart", "Sync", "SendMessage",
	"LogoutUser", "UpdateOS", "ReinstallConfiguration", "SyncCompliance", "EnterKiosk", "ExitKiosk",
	"EnableLostMode", "DisableLostMode", "Relinquish", "CancelRelinquish", "Disable", "Reenable", "Deprovision"}

// UnenrollSteps are the steps of Unenroll, in the order the source API runs them.
var UnenrollSteps = []string{"DisableKioskMode", "DeleteDownloadedFiles", "UninstallManagedApps", "UninstallMDMService"}

// Simulated is a virtual device: it records what it was asked to do, takes
// Delay to do it, and fails a FailureRate share of commands. It touches
// nothing on the host, so tests and `make dev` use it.
type Simulated struct {
	Serial       string
	PlatformName string
	Model        string
	OSVersion    string
	Delay        time.Duration
	FailureRate  float64
	// FailConfigurations names configurations that fail to install.
	FailConfigurations map[string]bool
	// FailStep names an Unenroll step that fails.
	FailStep string
	// RefuseOwners names owners the device will not take.
	RefuseOwners map[string]bool

	mu       sync.Mutex
	executed []*agentv1.Command
	config   *agentv1.DesiredConfig
	owner    string
	// disabled is what the device enforces: set by a configuration whose
	// state is Disabled and by the Disable command, cleared by their
	// opposites.
	disabled bool
}

// Disabled reports whether the device is disabled (unusable) now.
func (s *Simulated) Disabled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.disabled
}

// stateLocked is the administrative state the device enforces.
func (s *Simulated) stateLocked() string {
	if s.disabled {
		return "Disabled"
	}
	return "Active"
}

// Info describes the simulated device.
func (s *Simulated) Info() *agentv1.DeviceInfo {
	return &agentv1.DeviceInfo{SerialNumber: s.Serial, Platform: s.PlatformName, Model: s.Model,
		Manufacturer: "kubemdm simulator", OsVersion: s.OSVersion, AgentVersion: Version, StorageBytes: 64 << 30}
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

// Executed returns the commands the device ran, in order.
func (s *Simulated) Executed() []*agentv1.Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*agentv1.Command(nil), s.executed...)
}

// Config returns the last configuration applied.
func (s *Simulated) Config() *agentv1.DesiredConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.config
}

// Apply records the configuration and reports it installed, except the
// configurations set to fail.
func (s *Simulated) Apply(_ context.Context, cfg *agentv1.DesiredConfig) *agentv1.Facts {
	s.mu.Lock()
	s.config = cfg
	if !s.RefuseOwners[cfg.GetOwner()] {
		s.owner = cfg.GetOwner()
	}
	switch cfg.GetState() {
	case "Disabled":
		s.disabled = true
	case "Active":
		s.disabled = false
	}
	owner, state := s.owner, s.stateLocked()
	failing := make(map[string]bool, len(s.FailConfigurations))
	for k, v := range s.FailConfigurations {
		failing[k] = v
	}
	s.mu.Unlock()
	facts := &agentv1.Facts{Owner: owner, Kiosk: cfg.GetKiosk(), LostMode: cfg.GetLostMode(), State: state}
	for _, c := range cfg.GetConfigurations() {
		st := &agentv1.ConfigurationState{Name: c.GetName(), State: "Installed"}
		switch {
		case c.GetExcluded():
			st.State = "Excluded"
		case failing[c.GetName()]:
			st.State, st.Message = "Failed", "simulated installation failure"
		}
		facts.Configurations = append(facts.Configurations, st)
		// A configuration named *-cert installs a certificate, as a
		// certificate profile would.
		if st.State == "Installed" && strings.HasSuffix(c.GetName(), "-cert") {
			facts.Certificates = append(facts.Certificates, &agentv1.Certificate{
				Subject: "CN=" + c.GetName(), SerialNumber: fmt.Sprintf("%x", len(c.GetName())), Source: c.GetName()})
		}
	}
	return facts
}

// Executors handle every action by recording it.
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
	s.executed = append(s.executed, cmd)
	switch cmd.GetAction() {
	case "Disable":
		s.disabled = true
	case "Reenable":
		s.disabled = false
	}
	s.mu.Unlock()
	if cmd.GetAction() == "Unenroll" {
		return s.unenroll()
	}
	if s.FailureRate > 0 && rand.Float64() < s.FailureRate {
		return Result{Code: CodeInternal, Message: fmt.Sprintf("simulated failure of %s", cmd.GetAction())}
	}
	return Result{Code: CodeOK, Message: fmt.Sprintf("%s done", cmd.GetAction())}
}

func (s *Simulated) unenroll() Result {
	var steps []*agentv1.Step
	for _, name := range UnenrollSteps {
		if name == s.FailStep {
			steps = append(steps, &agentv1.Step{Name: name, Outcome: agentv1.Outcome_OUTCOME_FAILED, Message: "simulated failure"})
			return Result{Code: CodeInternal, Message: "unenroll failed at " + name, Steps: steps}
		}
		steps = append(steps, &agentv1.Step{Name: name, Outcome: agentv1.Outcome_OUTCOME_SUCCEEDED})
	}
	return Result{Code: CodeOK, Message: "unenrolled", Steps: steps}
}
