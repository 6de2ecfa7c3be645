// Package packaging checks the agent's .deb and .rpm as make agent-packages
// builds them: what they hold, with which permissions, and that the .deb
// installs into a throwaway root and the agent it installs runs.
package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// skipOutsideCI skips a check this machine cannot run, but fails it in CI
// (.ci/run sets CI), whose Debian image has dpkg and runs as root: there a
// skipped package check would be a check that cannot fail.
func skipOutsideCI(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s; CI must run this check", why)
	}
	t.Skip(why)
}

func TestAgentPackages(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		skipOutsideCI(t, "dpkg-deb is not installed")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	run(t, root, "make", "--no-print-directory", "agent-packages", "PACKAGE_DIR="+out, "AGENT_VERSION=1.2.3")
	debs, _ := filepath.Glob(filepath.Join(out, "kubemdm-agent_1.2.3_*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(out, "kubemdm-agent-1.2.3-1.*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("built %v and %v; want one .deb and one .rpm", debs, rpms)
	}
	deb := debs[0]

	t.Run("contents and permissions", func(t *testing.T) {
		listing := run(t, "", "dpkg-deb", "--contents", deb)
		for _, want := range []string{
			`-rwxr-xr-x root/root .* \./usr/bin/kubemdm-agent`,
			`-rw-r--r-- root/root .* \./lib/systemd/system/kubemdm-agent\.service`,
			// Options may hold a package directory's path; root reads them.
			`-rw-r----- root/root .* \./etc/default/kubemdm-agent`,
			// The key, the certificate and configurations with Secret values.
			`drwx------ root/root .* \./var/lib/kubemdm-agent/`,
		} {
			if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(listing) {
				t.Errorf("the .deb has no line matching %q:\n%s", want, listing)
			}
		}
		if conffiles := run(t, "", "dpkg-deb", "--info", deb, "conffiles"); strings.TrimSpace(conffiles) != "/etc/default/kubemdm-agent" {
			t.Errorf("conffiles %q: a person's edits of the options must survive an upgrade", conffiles)
		}
		control := run(t, "", "dpkg-deb", "--field", deb, "Package", "Version")
		if !strings.Contains(control, "Package: kubemdm-agent") || !strings.Contains(control, "Version: 1.2.3") {
			t.Errorf("control fields:\n%s", control)
		}
	})

	t.Run("systemd unit", func(t *testing.T) {
		x := t.TempDir()
		run(t, "", "dpkg-deb", "-x", deb, x)
		unit, err := os.ReadFile(filepath.Join(x, "lib/systemd/system/kubemdm-agent.service"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"ExecStart=/usr/bin/kubemdm-agent --state-dir /var/lib/kubemdm-agent $KUBEMDM_AGENT_ARGS",
			"EnvironmentFile=-/etc/default/kubemdm-agent",
			// Not started before the device enrolled.
			"ConditionPathExists=/var/lib/kubemdm-agent/cert.pem",
			"StateDirectoryMode=0700",
			"Restart=always",
			"RestartPreventExitStatus=3",
			"WantedBy=multi-user.target",
		} {
			if !strings.Contains(string(unit), want+"\n") {
				t.Errorf("the unit lacks %q", want)
			}
		}
	})

	t.Run("installs into a throwaway root", func(t *testing.T) {
		if os.Geteuid() != 0 {
			skipOutsideCI(t, "dpkg --root needs root to set the files' owners")
		}
		target := t.TempDir()
		admin := filepath.Join(target, "var/lib/dpkg")
		for _, d := range []string{"info", "updates", "triggers"} {
			if err := os.MkdirAll(filepath.Join(admin, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(admin, "status"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		dpkg := func(args ...string) string {
			return run(t, "", "dpkg", append([]string{"--root=" + target, "--log=/dev/null"}, args...)...)
		}
		dpkg("--install", deb)
		if status := dpkg("--status", "kubemdm-agent"); !strings.Contains(status, "Status: install ok installed") {
			t.Errorf("after install:\n%s", status)
		}
		if fi, err := os.Stat(filepath.Join(target, "var/lib/kubemdm-agent")); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("state directory: %v, %v; want 0700", fi, err)
		}
		// The agent installed runs, and says how to enroll.
		help := exec.Command(filepath.Join(target, "usr/bin/kubemdm-agent"), "--help")
		var b bytes.Buffer
		help.Stdout, help.Stderr = &b, &b
		_ = help.Run()
		if !strings.Contains(b.String(), "kubemdm-agent enroll --gateway") {
			t.Errorf("kubemdm-agent --help:\n%s", b.String())
		}
		// Removing it keeps the options a person edited.
		dpkg("--remove", "kubemdm-agent")
		if _, err := os.Stat(filepath.Join(target, "usr/bin/kubemdm-agent")); err == nil {
			t.Error("the binary stayed after remove")
		}
		if _, err := os.Stat(filepath.Join(target, "etc/default/kubemdm-agent")); err != nil {
			t.Error("remove took the conffile, which only purge may")
		}
	})

	t.Run("rpm", func(t *testing.T) {
		b, err := os.ReadFile(rpms[0])
		if err != nil {
			t.Fatal(err)
		}
		// The lead's magic, then the name in the lead.
		if !bytes.HasPrefix(b, []byte{0xed, 0xab, 0xee, 0xdb}) || !bytes.Contains(b[:96], []byte("kubemdm-agent-1.2.3")) {
			t.Errorf("%s is not an rpm of kubemdm-agent 1.2.3", rpms[0])
		}
		if _, err := exec.LookPath("rpm"); err == nil {
			files := run(t, "", "rpm", "-qlp", "--dump", rpms[0])
			for _, want := range []string{"/usr/bin/kubemdm-agent", "/lib/systemd/system/kubemdm-agent.service", "/var/lib/kubemdm-agent"} {
				if !strings.Contains(files, want) {
					t.Errorf("the rpm lacks %s:\n%s", want, files)
				}
			}
		}
	})
}
