package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// Version is the agent's version, reported in deviceInfo.
var Version = "v0.1.0-dev"

// Linux manages the host it runs on. Kiosk and lost-mode flags and messages
// are files in its own directory; configurations write files and systemd
// units under Root, and the agent removes only the ones it wrote. Reboot,
// wipe and logout touch the host, so they are refused unless
// AllowDestructive is set.
type Linux struct {
	// Dir is the managed directory, inside the agent's state directory.
	Dir string
	// Root is where configuration files and units go: "/" on a real host,
	// a sandbox in tests.
	Root string
	// PackageDir holds the .deb files (NAME_VERSION_ARCH.deb) Present
	// packages are installed from; on the host's own root a package not
	// there comes from apt-get.
	PackageDir string
	// Run runs a host tool (systemctl, dconf, update-ca-certificates,
	// nmcli) after a pass changed the files it reads: RunCommand on a real
	// host, nil under a sandbox root, where no tool is told anything.
	Run              func(argv ...string) error
	AllowDestructive bool

	// states are the configurations' states of the last apply, reported
	// again while the gateway holds the configurations.
	states []*agentv1.ConfigurationState
	// configs are the configurations of the last apply, for
	// ReinstallConfiguration.
	configs []*agentv1.Configuration
	// loaded says states and configs were read back from Dir after a
	// restart.
	loaded bool
	// facts are those of the last apply.
	facts *agentv1.Facts
	// rewrote are the configurations the last pass wrote a file for.
	rewrote []string
}

// Info reads the host's identity.
func (l *Linux) Info() *agentv1.DeviceInfo {
	info := &agentv1.DeviceInfo{Platform: "Linux", AgentVersion: Version, Manufacturer: "Linux", Model: runtime.GOARCH}
	if b, err := os.ReadFile("/etc/machine-id"); err == nil {
		info.SerialNumber = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		info.OsVersion = strings.TrimSpace(string(b))
	}
	return info
}

// Apply writes each configuration as a file and removes excluded ones.
func (l *Linux) Apply(_ context.Context, cfg *agentv1.DesiredConfig) *agentv1.Facts {
	facts := &agentv1.Facts{Owner: cfg.GetOwner(), Kiosk: cfg.GetKiosk(), LostMode: cfg.GetLostMode()}
	// The disabled flag is the host's disabled state, whether Git set
	// spec.state or a Disable command ran; the report says what it holds.
	_ = os.MkdirAll(l.Dir, 0o700)
	switch cfg.GetState() {
	case "Disabled":
		l.setFlag("disabled", true)
	case "Active":
		l.setFlag("disabled", false)
	}
	facts.State = "Active"
	if _, err := os.Stat(filepath.Join(l.Dir, "disabled")); err == nil {
		facts.State = "Disabled"
	}
	l.loadConfigurations()
	if !cfg.GetConfigurationsHeld() {
		l.configs = cfg.GetConfigurations()
		l.setStates(l.applyConfigurations(l.configs), nil)
		l.saveConfigurations()
	}
	facts.Configurations = l.states
	l.facts = proto.Clone(facts).(*agentv1.Facts)
	return facts
}

// setStates records the states of a pass with when each configuration was
// last written: now for a new revision, one the pass changed a file of, or
// one reinstalled; else as before.
func (l *Linux) setStates(states []*agentv1.ConfigurationState, reinstalled []string) {
	for _, st := range states {
		i := slices.IndexFunc(l.states, func(o *agentv1.ConfigurationState) bool { return o.GetName() == st.GetName() })
		switch {
		case i < 0 || l.states[i].GetRevision() != st.GetRevision() || l.states[i].GetAppliedTime() == nil ||
			slices.Contains(reinstalled, st.GetName()) || slices.Contains(l.rewrote, st.GetName()):
			st.AppliedTime = timestamppb.Now()
		default:
			st.AppliedTime = l.states[i].GetAppliedTime()
		}
	}
	l.states = states
}

// Facts are those of the last apply with the configurations' states as
// they are now, reported after a command changed them (a reinstall).
func (l *Linux) Facts() *agentv1.Facts {
	if l.facts == nil {
		return nil
	}
	f := proto.Clone(l.facts).(*agentv1.Facts)
	f.Configurations = l.states
	return f
}

// Executors are the commands that make sense on a Linux host.
func (l *Linux) Executors() map[string]Executor {
	flag := func(name string, on bool) Executor {
		return func(context.Context, *agentv1.Command) Result {
			return l.setFlag(name, on)
		}
	}
	ok := func(context.Context, *agentv1.Command) Result { return Result{Code: CodeOK} }
	return map[string]Executor{
		"Lock":                   flag("locked", true),
		"Unlock":                 flag("locked", false),
		"Disable":                flag("disabled", true),
		"Reenable":               flag("disabled", false),
		"Sync":                   ok,
		"SyncCompliance":         ok,
		"SendMessage":            l.message,
		"Restart":                l.destructive("reboot", "systemctl", "reboot"),
		"LogoutUser":             l.destructive("logout", "loginctl", "terminate-seat", "seat0"),
		"Wipe":                   l.destructive("wipe"),
		"Retire":                 l.release,
		"Unenroll":               l.release,
		"Deprovision":            l.release,
		"ReinstallConfiguration": l.reinstall,
	}
}

// reinstall writes the named configurations again, as their revision says:
// a file someone edited gets its content back. It converges every
// configuration, so that what it writes stays the agent's to remove.
func (l *Linux) reinstall(_ context.Context, cmd *agentv1.Command) Result {
	l.loadConfigurations()
	names := cmd.GetParameters().GetConfigurations()
	for _, name := range names {
		if !slices.ContainsFunc(l.configs, func(c *agentv1.Configuration) bool { return c.GetName() == name }) {
			return Result{Code: CodeNotFound, Message: fmt.Sprintf("configuration %s is not installed", name)}
		}
	}
	l.setStates(l.applyConfigurations(l.configs), names)
	l.saveConfigurations()
	for _, st := range l.states {
		if slices.Contains(names, st.GetName()) && st.GetState() != "Applied" {
			return Result{Code: CodeInternal, Message: fmt.Sprintf("reinstalling %s: %s", st.GetName(), st.GetMessage())}
		}
	}
	return Result{Code: CodeOK, Message: fmt.Sprintf("reinstalled %s", strings.Join(names, ", "))}
}

// The last configurations and their states outlive a restart: an agent
// whose configurations are held reports them as they were, and
// ReinstallConfiguration finds them. They hold Secret values, so they are
// kept as the agent's key is, readable by it alone.
const (
	configurationsFile = "configurations.pb"
	statesFile         = "configuration-states.pb"
)

func (l *Linux) saveConfigurations() {
	for name, m := range map[string]proto.Message{
		configurationsFile: &agentv1.DesiredConfig{Configurations: l.configs},
		statesFile:         &agentv1.Facts{Configurations: l.states},
	} {
		if b, err := proto.Marshal(m); err == nil {
			_ = writeAtomic(filepath.Join(l.Dir, name), b)
		}
	}
	l.loaded = true
}

func (l *Linux) loadConfigurations() {
	if l.loaded {
		return
	}
	l.loaded = true
	var cfg agentv1.DesiredConfig
	if b, err := os.ReadFile(filepath.Join(l.Dir, configurationsFile)); err == nil && proto.Unmarshal(b, &cfg) == nil {
		l.configs = cfg.GetConfigurations()
	}
	var facts agentv1.Facts
	if b, err := os.ReadFile(filepath.Join(l.Dir, statesFile)); err == nil && proto.Unmarshal(b, &facts) == nil {
		l.states = facts.GetConfigurations()
	}
}

func (l *Linux) setFlag(name string, on bool) Result {
	path := filepath.Join(l.Dir, name)
	var err error
	if on {
		err = os.WriteFile(path, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
	} else if err = os.Remove(path); os.IsNotExist(err) {
		err = nil
	}
	if err != nil {
		return Result{Code: CodeInternal, Message: err.Error()}
	}
	return Result{Code: CodeOK}
}

func (l *Linux) message(_ context.Context, cmd *agentv1.Command) Result {
	f, err := os.OpenFile(filepath.Join(l.Dir, "messages.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return Result{Code: CodeInternal, Message: err.Error()}
	}
	defer f.Close()
	p := cmd.GetParameters()
	if _, err := fmt.Fprintf(f, "%s %s: %s\n", time.Now().UTC().Format(time.RFC3339), p.GetMessageTitle(), p.GetMessageBody()); err != nil {
		return Result{Code: CodeInternal, Message: err.Error()}
	}
	return Result{Code: CodeOK}
}

// destructive runs a host command only when allowed; without a command
// (wipe) it clears the managed directory, which is all the agent owns.
func (l *Linux) destructive(what string, argv ...string) Executor {
	return func(ctx context.Context, _ *agentv1.Command) Result {
		if !l.AllowDestructive {
			return Result{Code: CodeFailedPrecondition, Message: what + " is refused: start the agent with --allow-destructive to allow it"}
		}
		if len(argv) == 0 {
			return l.release(ctx, nil)
		}
		if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return Result{Code: CodeInternal, Message: fmt.Sprintf("%s: %v: %s", what, err, out)}
		}
		return Result{Code: CodeOK}
	}
}

// release removes everything the agent manages from the host: the files,
// units and packages of its configurations (the host's own files come
// back), then its directory.
func (l *Linux) release(context.Context, *agentv1.Command) Result {
	l.configs, l.states, l.loaded = nil, nil, true
	l.applyConfigurations(nil)
	o := l.readOwned()
	if len(o.Paths) > 0 {
		return Result{Code: CodeInternal, Message: fmt.Sprintf("could not give back %d files the configurations wrote; try again", len(o.Paths))}
	}
	if err := os.RemoveAll(l.Dir); err != nil {
		return Result{Code: CodeInternal, Message: err.Error()}
	}
	if len(o.Packages) > 0 {
		// A package dpkg will not remove (another depends on it now)
		// must not keep the device managed for ever: it stays, the
		// host's from now on, and the result says so.
		return Result{Code: CodeOK, Message: fmt.Sprintf("managed files removed; packages %s stay installed: dpkg could not remove them", strings.Join(o.Packages, ", "))}
	}
	return Result{Code: CodeOK, Message: "managed files removed"}
}
