package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// TestLinuxConfigurationFiles applies files and units to a sandbox root,
// reads them back from disk, and removes only what the agent wrote.
func TestLinuxConfigurationFiles(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(t.TempDir(), "managed")
	l := &Linux{Dir: dir, Root: root}
	ctx := context.Background()
	// A file of the host's own, beside the managed ones.
	hostFile := filepath.Join(root, "etc", "hostname")
	if err := os.MkdirAll(filepath.Dir(hostFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hostFile, []byte("box\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	first := &agentv1.DesiredConfig{Generation: 1, State: "Active", Configurations: []*agentv1.Configuration{
		{Name: "motd", Revision: "r1", Settings: &agentv1.Settings{
			Files:        []*agentv1.File{{Path: "/etc/motd", Mode: 0o640, Content: []byte("hello\n")}},
			SystemdUnits: []*agentv1.SystemdUnit{{Name: "kiosk.service", Enabled: true, Content: "[Service]\nExecStart=/bin/true\n"}},
			Passcode:     &agentv1.Passcode{MinLength: ptrTo[int32](8)},
		}},
		{Name: "bad", Revision: "r9", Settings: &agentv1.Settings{Files: []*agentv1.File{{Path: "/etc/../escape", Content: []byte("x")}}}},
	}}
	facts := l.Apply(ctx, first)
	got := map[string]*agentv1.ConfigurationState{}
	for _, c := range facts.GetConfigurations() {
		got[c.GetName()] = c
	}
	if s := got["motd"]; s.GetState() != "Applied" || s.GetRevision() != "r1" || len(s.GetSettings()) != 1 || s.GetSettings()[0].GetReason() != "Unsupported" {
		t.Errorf("motd reported %v, want Applied at r1 with passcode Unsupported", s)
	}
	if s := got["bad"]; s.GetState() != "Failed" || s.GetSettings()[0].GetPath() != "files[/etc/../escape]" {
		t.Errorf("bad reported %v, want Failed naming the file", s)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(root), "escape")); err == nil {
		t.Fatal("a path with .. was written outside the root")
	}
	b, err := os.ReadFile(filepath.Join(root, "etc", "motd"))
	if err != nil || string(b) != "hello\n" {
		t.Fatalf("motd reads %q, %v", b, err)
	}
	if fi, _ := os.Stat(filepath.Join(root, "etc", "motd")); fi.Mode().Perm() != 0o640 {
		t.Errorf("motd mode %v, want 0640", fi.Mode().Perm())
	}
	if target, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/kiosk.service")); err != nil || target != "/etc/systemd/system/kiosk.service" {
		t.Errorf("kiosk.service enabled link %q, %v", target, err)
	}

	// The configuration changes: the unit is disabled and the file changes.
	second := &agentv1.DesiredConfig{Generation: 1, State: "Active", Configurations: []*agentv1.Configuration{
		{Name: "motd", Revision: "r2", Settings: &agentv1.Settings{
			Files:        []*agentv1.File{{Path: "/etc/motd", Mode: 0o644, Content: []byte("bye\n")}},
			SystemdUnits: []*agentv1.SystemdUnit{{Name: "kiosk.service", Content: "[Service]\nExecStart=/bin/true\n"}},
		}}}}
	l.Apply(ctx, second)
	if b, _ := os.ReadFile(filepath.Join(root, "etc", "motd")); string(b) != "bye\n" {
		t.Errorf("motd reads %q after the change", b)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/kiosk.service")); err == nil {
		t.Error("a disabled unit kept its link")
	}

	// Unassigned: what the agent wrote goes, the host's own file stays.
	l.Apply(ctx, &agentv1.DesiredConfig{Generation: 2, State: "Active"})
	for _, p := range []string{"etc/motd", "etc/systemd/system/kiosk.service"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s is still there after its configuration went", p)
		}
	}
	if b, err := os.ReadFile(hostFile); err != nil || string(b) != "box\n" {
		t.Errorf("the host's own file changed: %q, %v", b, err)
	}
}

// TestLinuxWithoutRootWritesNothing: an agent with no root configured
// refuses files rather than writing to "/".
func TestLinuxWithoutRootWritesNothing(t *testing.T) {
	l := &Linux{Dir: filepath.Join(t.TempDir(), "managed")}
	facts := l.Apply(context.Background(), &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{
		{Name: "motd", Settings: &agentv1.Settings{Files: []*agentv1.File{{Path: "/etc/kubemdm-test-never-written", Content: []byte("x")}}}}}})
	if s := facts.GetConfigurations()[0]; s.GetState() != "Failed" {
		t.Errorf("reported %v, want Failed", s)
	}
	if _, err := os.Stat("/etc/kubemdm-test-never-written"); err == nil {
		t.Fatal("the agent wrote to the host")
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestLinuxReinstallsAConfiguration: ReinstallConfiguration writes an
// edited file back as the revision says, and names a configuration the
// device does not have.
func TestLinuxReinstallsAConfiguration(t *testing.T) {
	root := t.TempDir()
	l := &Linux{Dir: filepath.Join(t.TempDir(), "managed"), Root: root}
	ctx := context.Background()
	l.Apply(ctx, &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{{Name: "motd", Revision: "r1",
		Settings: &agentv1.Settings{Files: []*agentv1.File{{Path: "/etc/motd", Mode: 0o644, Content: []byte("managed\n")}}}}}})
	motd := filepath.Join(root, "etc", "motd")
	if err := os.WriteFile(motd, []byte("edited by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reinstall := func(names ...string) Result {
		return l.Executors()["ReinstallConfiguration"](ctx, &agentv1.Command{Action: "ReinstallConfiguration",
			Parameters: &agentv1.CommandParameters{Configurations: names}})
	}
	if res := reinstall("motd"); res.Code != CodeOK {
		t.Fatalf("reinstall: %+v", res)
	}
	if b, _ := os.ReadFile(motd); string(b) != "managed\n" {
		t.Errorf("motd reads %q after the reinstall", b)
	}
	if res := reinstall("vpn"); res.Code != CodeNotFound {
		t.Errorf("reinstalling a configuration the device lacks: %+v, want code 5", res)
	}
}
