package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// buildDeb builds a package with one file, as dpkg-deb does for any .deb.
func buildDeb(t *testing.T, dir, name, version, file string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	for path, content := range map[string]string{
		"DEBIAN/control": "Package: " + name + "\nVersion: " + version + "\nArchitecture: all\nMaintainer: kubemdm tests <tests@example.com>\nDescription: a test package\n",
		file:             name + " " + version + "\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, path), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", src, filepath.Join(dir, name+"_"+version+"_all.deb")).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v: %s", err, out)
	}
}

// sandbox is a throwaway root with an empty dpkg database.
func sandbox(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestLinuxPackages installs, upgrades and removes packages with dpkg in a
// throwaway root; a package the host had is left alone when its
// configuration goes.
func TestLinuxPackages(t *testing.T) {
	for _, tool := range []string{"dpkg", "dpkg-deb", "dpkg-query"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: this test needs a Debian host", tool)
		}
	}
	debs := t.TempDir()
	buildDeb(t, debs, "kubemdm-hello", "1.0", "usr/share/kubemdm-hello/version")
	buildDeb(t, debs, "kubemdm-hello", "1.1", "usr/share/kubemdm-hello/version")
	buildDeb(t, debs, "host-tool", "2.0", "usr/share/host-tool/version")
	root := sandbox(t)
	l := &Linux{Dir: filepath.Join(t.TempDir(), "managed"), Root: root, PackageDir: debs}
	ctx := context.Background()
	// The host installed host-tool itself.
	if err := l.dpkg("--install", filepath.Join(debs, "host-tool_2.0_all.deb")); err != nil {
		t.Fatal(err)
	}
	apply := func(pkgs ...*agentv1.Package) *agentv1.ConfigurationState {
		facts := l.Apply(ctx, &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{
			{Name: "tools", Revision: "r", Settings: &agentv1.Settings{Packages: pkgs}}}})
		return facts.GetConfigurations()[0]
	}
	version := func(name string) string { return l.installedVersion(name) }

	if st := apply(&agentv1.Package{Name: "kubemdm-hello", State: "Present", Version: "1.0"}, &agentv1.Package{Name: "host-tool", State: "Present"}); st.GetState() != "Applied" {
		t.Fatalf("install reported %v", st)
	}
	if version("kubemdm-hello") != "1.0" {
		t.Fatalf("kubemdm-hello at %q, want 1.0", version("kubemdm-hello"))
	}
	if b, _ := os.ReadFile(filepath.Join(root, "usr/share/kubemdm-hello/version")); string(b) != "kubemdm-hello 1.0\n" {
		t.Errorf("the package's file reads %q", b)
	}
	if st := apply(&agentv1.Package{Name: "kubemdm-hello", State: "Present", Version: "1.1"}, &agentv1.Package{Name: "host-tool", State: "Present"}); st.GetState() != "Applied" || version("kubemdm-hello") != "1.1" {
		t.Fatalf("upgrade reported %v, version %q", st, version("kubemdm-hello"))
	}
	if st := apply(&agentv1.Package{Name: "kubemdm-hello", State: "Present", Version: "9.9"}); st.GetState() != "Failed" || st.GetSettings()[0].GetPath() != "packages[kubemdm-hello]" {
		t.Fatalf("a version with no package file reported %v", st)
	}

	// The configuration goes: the agent removes what it installed, not
	// what the host had.
	l.Apply(ctx, &agentv1.DesiredConfig{})
	if v := version("kubemdm-hello"); v != "" {
		t.Errorf("kubemdm-hello still installed at %s", v)
	}
	if v := version("host-tool"); v != "2.0" {
		t.Errorf("the host's own host-tool is at %q, want 2.0", v)
	}

	// Absent removes, even one the host had: it was asked for.
	if st := apply(&agentv1.Package{Name: "host-tool", State: "Absent"}); st.GetState() != "Applied" || version("host-tool") != "" {
		t.Errorf("Absent reported %v, version %q", st, version("host-tool"))
	}
}

// TestLinuxRollsBackAFailedConfiguration: a configuration whose second file
// cannot be written leaves the first as it was before the pass.
func TestLinuxRollsBackAFailedConfiguration(t *testing.T) {
	root := t.TempDir()
	l := &Linux{Dir: filepath.Join(t.TempDir(), "managed"), Root: root}
	ctx := context.Background()
	cfg := func(rev, content string, files ...string) *agentv1.DesiredConfig {
		c := &agentv1.Configuration{Name: "app", Revision: rev, Settings: &agentv1.Settings{}}
		for _, f := range files {
			c.Settings.Files = append(c.Settings.Files, &agentv1.File{Path: f, Mode: 0o644, Content: []byte(content)})
		}
		return &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{c}}
	}
	if st := l.Apply(ctx, cfg("r1", "one\n", "/etc/app/a.conf")).GetConfigurations()[0]; st.GetState() != "Applied" {
		t.Fatalf("r1 reported %v", st)
	}
	// A directory where r2's second file should go makes that write fail.
	if err := os.MkdirAll(filepath.Join(root, "etc/app/b.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	st := l.Apply(ctx, cfg("r2", "two\n", "/etc/app/a.conf", "/etc/app/b.conf", "/etc/app/c.conf")).GetConfigurations()[0]
	if st.GetState() != "Failed" {
		t.Fatalf("r2 reported %v, want Failed", st)
	}
	reasons := map[string]string{}
	for _, s := range st.GetSettings() {
		reasons[s.GetPath()] = s.GetMessage()
	}
	if len(reasons) != 3 {
		t.Errorf("settings %v, want all three reported", reasons)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/app/a.conf")); string(b) != "one\n" {
		t.Errorf("a.conf reads %q after the rollback, want r1's content", b)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/app/c.conf")); err == nil {
		t.Error("c.conf, new in r2, is still there after the rollback")
	}
	// The agent still owns a.conf: unassigning removes it.
	l.Apply(ctx, &agentv1.DesiredConfig{})
	if _, err := os.Stat(filepath.Join(root, "etc/app/a.conf")); err == nil {
		t.Error("a.conf outlived its configuration")
	}
}
