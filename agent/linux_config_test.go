package agent

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
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
			Apps:         []*agentv1.App{{Id: "org.example.kiosk", InstallType: "Required"}},
		}},
		{Name: "bad", Revision: "r9", Settings: &agentv1.Settings{Files: []*agentv1.File{{Path: "/etc/../escape", Content: []byte("x")}}}},
	}}
	facts := l.Apply(ctx, first)
	got := map[string]*agentv1.ConfigurationState{}
	for _, c := range facts.GetConfigurations() {
		got[c.GetName()] = c
	}
	if s := got["motd"]; s.GetState() != "Applied" || s.GetRevision() != "r1" || len(s.GetSettings()) != 1 || s.GetSettings()[0].GetReason() != "Unsupported" {
		t.Errorf("motd reported %v, want Applied at r1 with the app Unsupported", s)
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
	cfg := &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{{Name: "motd", Revision: "r1",
		Settings: &agentv1.Settings{Files: []*agentv1.File{{Path: "/etc/motd", Mode: 0o644, Content: []byte("managed\n")}}}}}}
	applied := stateOf(l.Apply(ctx, cfg), "motd").GetAppliedTime().AsTime()
	if again := stateOf(l.Apply(ctx, cfg), "motd").GetAppliedTime().AsTime(); !again.Equal(applied) || applied.IsZero() {
		t.Errorf("applied at %s, then %s after a pass that wrote nothing; want the first time kept", applied, again)
	}
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
	// The report after the command says when it was written again.
	if at := stateOf(l.Facts(), "motd").GetAppliedTime().AsTime(); !at.After(applied) {
		t.Errorf("after the reinstall the report says motd was written at %s, not after %s", at, applied)
	}
	if res := reinstall("vpn"); res.Code != CodeNotFound {
		t.Errorf("reinstalling a configuration the device lacks: %+v, want code 5", res)
	}
}

// writeHostFile puts a file of the host's own under root.
func writeHostFile(t *testing.T, root, path, content string, mode os.FileMode) {
	t.Helper()
	full := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func stateOf(facts *agentv1.Facts, name string) *agentv1.ConfigurationState {
	for _, c := range facts.GetConfigurations() {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

// TestLinuxGivesBackTheHostsOwnFiles: a configuration that replaces a file
// or an enable link the host already had puts it back when it goes, as
// does retiring the device; what only the agent wrote is removed.
func TestLinuxGivesBackTheHostsOwnFiles(t *testing.T) {
	root := t.TempDir()
	l := &Linux{Dir: filepath.Join(t.TempDir(), "managed"), Root: root}
	ctx := context.Background()
	writeHostFile(t, root, "etc/motd", "the host's motd\n", 0o600)
	writeHostFile(t, root, "usr/lib/systemd/system/sshd.service", "[Service]\n", 0o644)
	wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/lib/systemd/system/sshd.service", filepath.Join(wants, "sshd.service")); err != nil {
		t.Fatal(err)
	}
	apply := func(configs ...*agentv1.Configuration) *agentv1.Facts {
		return l.Apply(ctx, &agentv1.DesiredConfig{State: "Active", Configurations: configs})
	}
	managed := &agentv1.Configuration{Name: "base", Revision: "r1", Settings: &agentv1.Settings{
		Files:        []*agentv1.File{{Path: "/etc/motd", Mode: 0o644, Content: []byte("managed\n")}, {Path: "/etc/issue", Mode: 0o644, Content: []byte("new\n")}},
		SystemdUnits: []*agentv1.SystemdUnit{{Name: "sshd.service", Enabled: true, Content: "[Service]\nExecStart=/bin/true\n"}},
	}}
	if st := stateOf(apply(managed), "base"); st.GetState() != "Applied" {
		t.Fatalf("base reported %v", st)
	}
	if target, _ := os.Readlink(filepath.Join(wants, "sshd.service")); target != "/etc/systemd/system/sshd.service" {
		t.Errorf("the enable link points to %q, want the unit the configuration wrote", target)
	}
	apply()
	if b, err := os.ReadFile(filepath.Join(root, "etc/motd")); err != nil || string(b) != "the host's motd\n" {
		t.Errorf("/etc/motd reads %q, %v after its configuration went; want the host's own back", b, err)
	}
	if fi, _ := os.Stat(filepath.Join(root, "etc/motd")); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("/etc/motd mode %v, want the host's 0600 back", fi)
	}
	if target, err := os.Readlink(filepath.Join(wants, "sshd.service")); err != nil || target != "/usr/lib/systemd/system/sshd.service" {
		t.Errorf("the host's enable link reads %q, %v; want it back", target, err)
	}
	for _, p := range []string{"etc/issue", "etc/systemd/system/sshd.service"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s, which only the agent wrote, is still there", p)
		}
	}

	// Retiring gives the host's files back too.
	apply(managed)
	if res := l.Executors()["Retire"](ctx, &agentv1.Command{Action: "Retire"}); res.Code != CodeOK {
		t.Fatalf("retire: %+v", res)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/motd")); string(b) != "the host's motd\n" {
		t.Errorf("/etc/motd reads %q after Retire", b)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/issue")); err == nil {
		t.Error("/etc/issue is still there after Retire")
	}
}

// TestLinuxFailedRevisionKeepsTheLastGoodOne: a revision that fails halfway
// leaves every file of the revision before it in place, the ones it did
// not touch included.
func TestLinuxFailedRevisionKeepsTheLastGoodOne(t *testing.T) {
	root := t.TempDir()
	l := &Linux{Dir: filepath.Join(t.TempDir(), "managed"), Root: root}
	ctx := context.Background()
	writeHostFile(t, root, "etc/hostname", "box\n", 0o644)
	good := &agentv1.Configuration{Name: "base", Revision: "r1", Settings: &agentv1.Settings{Files: []*agentv1.File{
		{Path: "/etc/a", Mode: 0o644, Content: []byte("a1\n")}, {Path: "/etc/b", Mode: 0o644, Content: []byte("b1\n")}}}}
	l.Apply(ctx, &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{good}})
	bad := &agentv1.Configuration{Name: "base", Revision: "r2", Settings: &agentv1.Settings{Files: []*agentv1.File{
		{Path: "/etc/a", Mode: 0o644, Content: []byte("a2\n")},
		{Path: "/etc/c", Mode: 0o644, Content: []byte("c2\n")},
		// /etc/hostname is a file: nothing can be written under it.
		{Path: "/etc/hostname/x", Mode: 0o644, Content: []byte("x\n")}}}}
	st := stateOf(l.Apply(ctx, &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{bad}}), "base")
	if st.GetState() != "Failed" || st.GetRevision() != "r2" {
		t.Fatalf("r2 reported %v, want Failed", st)
	}
	for path, want := range map[string]string{"etc/a": "a1\n", "etc/b": "b1\n"} {
		if b, err := os.ReadFile(filepath.Join(root, path)); err != nil || string(b) != want {
			t.Errorf("%s reads %q, %v after r2 failed; want r1's %q", path, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc/c")); err == nil {
		t.Error("/etc/c of the failed revision stayed")
	}
	// And they are still the agent's: the configuration going removes them.
	l.Apply(ctx, &agentv1.DesiredConfig{})
	for _, p := range []string{"etc/a", "etc/b"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s stayed after its configuration went", p)
		}
	}
}

// TestLinuxEnablesOnlyUnitsThatExist: enabling a unit the configuration
// does not carry links to the host's unit, or fails when there is none;
// systemd is told to read units again only when a pass changed one.
func TestLinuxEnablesOnlyUnitsThatExist(t *testing.T) {
	root := t.TempDir()
	var ran []string
	l := &Linux{Dir: filepath.Join(t.TempDir(), "managed"), Root: root,
		Run: func(argv ...string) error { ran = append(ran, strings.Join(argv, " ")); return nil }}
	ctx := context.Background()
	reloads := func() int { return count(ran, "systemctl daemon-reload") }
	writeHostFile(t, root, "lib/systemd/system/cups.service", "[Service]\n", 0o644)
	cfg := &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{
		{Name: "printing", Revision: "r1", Settings: &agentv1.Settings{SystemdUnits: []*agentv1.SystemdUnit{{Name: "cups.service", Enabled: true}}}},
		{Name: "ghost", Revision: "r1", Settings: &agentv1.Settings{SystemdUnits: []*agentv1.SystemdUnit{{Name: "ghost.service", Enabled: true}}}},
	}}
	facts := l.Apply(ctx, cfg)
	if st := stateOf(facts, "printing"); st.GetState() != "Applied" {
		t.Errorf("printing reported %v", st)
	}
	if target, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/cups.service")); err != nil || target != "/lib/systemd/system/cups.service" {
		t.Errorf("cups.service link %q, %v; want the host's unit", target, err)
	}
	if st := stateOf(facts, "ghost"); st.GetState() != "Failed" || !strings.Contains(st.GetSettings()[0].GetMessage(), "not installed") {
		t.Errorf("ghost reported %v, want Failed saying the unit is not installed", st)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/ghost.service")); err == nil {
		t.Error("a link to a unit that does not exist was made")
	}
	if n := reloads(); n != 1 {
		t.Errorf("%d reloads after enabling a unit, want 1", n)
	}
	l.Apply(ctx, cfg)
	if n := reloads(); n != 1 {
		t.Errorf("%d reloads after a pass that changed nothing, want still 1", n)
	}
	l.Apply(ctx, &agentv1.DesiredConfig{})
	if n := reloads(); n != 2 {
		t.Errorf("%d reloads after disabling a unit, want 2", n)
	}
	if !slices.Equal(ran, []string{"systemctl daemon-reload", "systemctl restart cups.service", "systemctl daemon-reload", "systemctl stop cups.service"}) {
		t.Errorf("ran %q; want the unit started when enabled and stopped when disabled", ran)
	}
	if _, err := os.Stat(filepath.Join(root, "lib/systemd/system/cups.service")); err != nil {
		t.Error("the host's own unit went with the link")
	}
}

// TestLinuxRemembersConfigurationsAcrossRestarts: an agent started again
// reinstalls a configuration and reports its states while they are held.
func TestLinuxRemembersConfigurationsAcrossRestarts(t *testing.T) {
	root, dir := t.TempDir(), filepath.Join(t.TempDir(), "managed")
	ctx := context.Background()
	first := &Linux{Dir: dir, Root: root}
	first.Apply(ctx, &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{{Name: "motd", Revision: "r1",
		Settings: &agentv1.Settings{Files: []*agentv1.File{{Path: "/etc/motd", Mode: 0o644, Content: []byte("managed\n")}}}}}})
	writeHostFile(t, root, "etc/motd", "edited\n", 0o644)

	again := &Linux{Dir: dir, Root: root}
	facts := again.Apply(ctx, &agentv1.DesiredConfig{ConfigurationsHeld: true})
	if st := stateOf(facts, "motd"); st.GetState() != "Applied" || st.GetRevision() != "r1" {
		t.Errorf("held after a restart, reported %v; want motd Applied at r1", st)
	}
	res := again.Executors()["ReinstallConfiguration"](ctx, &agentv1.Command{Action: "ReinstallConfiguration",
		Parameters: &agentv1.CommandParameters{Configurations: []string{"motd"}}})
	if res.Code != CodeOK {
		t.Fatalf("reinstall after a restart: %+v", res)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/motd")); string(b) != "managed\n" {
		t.Errorf("motd reads %q after the reinstall", b)
	}
	if fi, err := os.Stat(filepath.Join(dir, configurationsFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the saved configurations: %v, %v; want mode 0600", fi, err)
	}
}

func count(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

// TestLinuxKeepsTheHostsOriginalThroughFaults: the host's own file comes
// back after two configurations took the same path, after a pass cut short
// before it recorded what it owns, and a failed first pass after an
// upgrade keeps what an earlier agent recorded.
func TestLinuxKeepsTheHostsOriginalThroughFaults(t *testing.T) {
	ctx := context.Background()
	unit := "/etc/systemd/system/x.service"
	host := "[Service]\nExecStart=/usr/bin/host\n"

	t.Run("two configurations, one path", func(t *testing.T) {
		root := t.TempDir()
		l := &Linux{Dir: filepath.Join(t.TempDir(), "managed"), Root: root}
		writeHostFile(t, root, unit[1:], host, 0o640)
		l.Apply(ctx, &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{
			{Name: "a", Revision: "r1", Settings: &agentv1.Settings{Files: []*agentv1.File{{Path: unit, Mode: 0o644, Content: []byte("from a\n")}}}},
			{Name: "b", Revision: "r1", Settings: &agentv1.Settings{SystemdUnits: []*agentv1.SystemdUnit{{Name: "x.service", Content: "from b\n"}}}},
		}})
		l.Apply(ctx, &agentv1.DesiredConfig{})
		if b, _ := os.ReadFile(filepath.Join(root, unit)); string(b) != host {
			t.Errorf("x.service reads %q after both went; want the host's own", b)
		}
		if fi, _ := os.Stat(filepath.Join(root, unit)); fi == nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("x.service mode %v, want the host's 0640", fi)
		}
	})

	t.Run("a pass cut short", func(t *testing.T) {
		root := t.TempDir()
		dir := filepath.Join(t.TempDir(), "managed")
		writeHostFile(t, root, "etc/motd", "host\n", 0o644)
		cfg := &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{{Name: "a", Revision: "r1",
			Settings: &agentv1.Settings{Files: []*agentv1.File{{Path: "/etc/motd", Mode: 0o644, Content: []byte("managed\n")}}}}}}
		(&Linux{Dir: dir, Root: root}).Apply(ctx, cfg)
		// killed after writing the file, before recording it
		if err := os.Remove(filepath.Join(dir, "owned.json")); err != nil {
			t.Fatal(err)
		}
		again := &Linux{Dir: dir, Root: root}
		again.Apply(ctx, cfg)
		again.Apply(ctx, &agentv1.DesiredConfig{})
		if b, _ := os.ReadFile(filepath.Join(root, "etc/motd")); string(b) != "host\n" {
			t.Errorf("/etc/motd reads %q; want the host's own back, kept before the pass that was cut short", b)
		}
	})

	t.Run("an earlier agent's record", func(t *testing.T) {
		root := t.TempDir()
		dir := filepath.Join(t.TempDir(), "managed")
		writeHostFile(t, root, "etc/a", "a1\n", 0o644)
		writeHostFile(t, root, "etc/b", "b1\n", 0o644)
		writeHostFile(t, root, "etc/hostname", "box\n", 0o644)
		writeHostFile(t, dir, "owned.json", `{"files":["/etc/a","/etc/b"]}`, 0o600)
		l := &Linux{Dir: dir, Root: root}
		st := stateOf(l.Apply(ctx, &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{{Name: "base", Revision: "r2",
			Settings: &agentv1.Settings{Files: []*agentv1.File{{Path: "/etc/a", Mode: 0o644, Content: []byte("a2\n")},
				{Path: "/etc/hostname/x", Mode: 0o644, Content: []byte("x")}}}}}}), "base")
		if st.GetState() != "Failed" {
			t.Fatalf("reported %v, want Failed", st)
		}
		for path, want := range map[string]string{"etc/a": "a1\n", "etc/b": "b1\n"} {
			if b, _ := os.ReadFile(filepath.Join(root, path)); string(b) != want {
				t.Errorf("%s reads %q after the failed pass, want %q", path, b, want)
			}
		}
	})

	t.Run("a unit whose content an earlier revision wrote", func(t *testing.T) {
		root := t.TempDir()
		l := &Linux{Dir: filepath.Join(t.TempDir(), "managed"), Root: root}
		l.Apply(ctx, &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{{Name: "u", Revision: "r1",
			Settings: &agentv1.Settings{SystemdUnits: []*agentv1.SystemdUnit{{Name: "x.service", Enabled: true, Content: "[Service]\n"}}}}}})
		st := stateOf(l.Apply(ctx, &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{{Name: "u", Revision: "r2",
			Settings: &agentv1.Settings{SystemdUnits: []*agentv1.SystemdUnit{{Name: "x.service", Enabled: true}}}}}}), "u")
		if st.GetState() != "Failed" {
			t.Errorf("enabling a unit whose only file the last revision wrote reported %v, want Failed", st)
		}
		link := filepath.Join(root, "etc/systemd/system/multi-user.target.wants/x.service")
		if target, err := os.Readlink(link); err == nil {
			if _, err := os.Stat(filepath.Join(root, target)); err != nil {
				t.Errorf("the enable link points at %s, which does not exist", target)
			}
		}
	})
}

// TestLinuxFileOwner: a file gets the owner and group the configuration
// names, looked up in the host's own /etc/passwd and /etc/group, and an
// unknown one fails the setting.
func TestLinuxFileOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	root := t.TempDir()
	writeHostFile(t, root, "etc/passwd", "root:x:0:0::/root:/bin/sh\nkiosk:x:1234:1234::/home/kiosk:/bin/sh\n", 0o644)
	writeHostFile(t, root, "etc/group", "root:x:0:\nkiosk:x:1234:\nstaff:x:50:\n", 0o644)
	l := &Linux{Dir: filepath.Join(t.TempDir(), "managed"), Root: root}
	st := stateOf(l.Apply(context.Background(), &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{{Name: "home", Revision: "r1",
		Settings: &agentv1.Settings{Files: []*agentv1.File{
			{Path: "/home/kiosk/.profile", Mode: 0o600, Owner: "kiosk", Group: "staff", Content: []byte("export X=1\n")},
			{Path: "/home/kiosk/id", Mode: 0o600, Owner: "4321", Content: []byte("x\n")},
			{Path: "/home/kiosk/ghost", Mode: 0o600, Owner: "ghost", Content: []byte("x\n")}}}}}}), "home")
	if st.GetState() != "Failed" || len(st.GetSettings()) != 3 || !strings.Contains(st.GetSettings()[1].GetMessage(), "ghost is not in the host's /etc/passwd") {
		t.Fatalf("reported %v; want the unknown owner to fail the configuration, naming it", st)
	}
	// After the failure is fixed, the owners are set.
	st = stateOf(l.Apply(context.Background(), &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{{Name: "home", Revision: "r2",
		Settings: &agentv1.Settings{Files: []*agentv1.File{
			{Path: "/home/kiosk/.profile", Mode: 0o600, Owner: "kiosk", Group: "staff", Content: []byte("export X=1\n")},
			{Path: "/home/kiosk/id", Mode: 0o600, Owner: "4321", Content: []byte("x\n")}}}}}}), "home")
	if st.GetState() != "Applied" {
		t.Fatalf("reported %v", st)
	}
	for path, want := range map[string][2]uint32{"home/kiosk/.profile": {1234, 50}, "home/kiosk/id": {4321, 0}} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != want[0] || st.Gid != want[1] {
			t.Errorf("%s is owned by %d:%d, want %d:%d", path, st.Uid, st.Gid, want[0], want[1])
		}
	}
}
