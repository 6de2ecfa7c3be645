package agent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// TestLinuxHostSettings: every typed setting lands in the file the host's
// own tools read, with its mode, the tools are told, settings with no Linux
// meaning are Unsupported, and removing the configuration takes it all
// back, the host's own faillock.conf included.
func TestLinuxHostSettings(t *testing.T) {
	root := t.TempDir()
	var ran []string
	l := &Linux{Dir: filepath.Join(t.TempDir(), "managed"), Root: root,
		Run: func(argv ...string) error { ran = append(ran, strings.Join(argv, " ")); return nil }}
	ctx := context.Background()
	writeHostFile(t, root, "etc/security/faillock.conf", "# the host's\ndeny = 3\n", 0o644)
	cfg := &agentv1.Configuration{Name: "baseline", Revision: "r1", Settings: &agentv1.Settings{
		Passcode: &agentv1.Passcode{MinLength: ptrTo[int32](12), RequireAlphanumeric: ptrTo(true), MaxFailedAttempts: ptrTo[int32](5), AutoLockSeconds: ptrTo[int32](300)},
		Wifi:     []*agentv1.WiFi{{Ssid: "corp", Security: "WPA2", Password: "s3cret-psk"}, {Ssid: "radius", Security: "WPA2Enterprise", Password: "x"}},
		Certificates: []*agentv1.CertificatePayload{{Name: "root-ca", Type: "CA", Pem: []byte("-----BEGIN CERTIFICATE-----\nCA\n")},
			{Name: "me", Type: "Identity", Pem: []byte("-----BEGIN PRIVATE KEY-----\nK\n")}},
		Restrictions: &agentv1.Restrictions{UsbStorageDisabled: ptrTo(true), CameraDisabled: ptrTo(false), ScreenCaptureDisabled: ptrTo(true)},
		SystemUpdate: &agentv1.SystemUpdate{Policy: "Windowed", WindowStart: "23:00", WindowEnd: "01:30"},
		Apps:         []*agentv1.App{{Id: "com.example.app", InstallType: "Required"}},
	}}
	st := stateOf(l.Apply(ctx, &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{cfg}}), "baseline")
	if st.GetState() != "Applied" {
		t.Fatalf("baseline reported %v", st)
	}
	var unsupported []string
	for _, s := range st.GetSettings() {
		if s.GetReason() == "Unsupported" {
			unsupported = append(unsupported, s.GetPath())
		}
	}
	if want := []string{"apps[com.example.app]", "restrictions.screenCaptureDisabled", "wifi[radius]"}; !slices.Equal(unsupported, want) {
		t.Errorf("unsupported %q, want %q", unsupported, want)
	}
	for path, want := range map[string]struct {
		mode     os.FileMode
		contains string
	}{
		"etc/security/pwquality.conf.d/kubemdm-minlen.conf":                {0o644, "minlen = 12"},
		"etc/security/pwquality.conf.d/kubemdm-alphanumeric.conf":          {0o644, "dcredit = -1"},
		"etc/security/faillock.conf":                                       {0o644, "deny = 5"},
		"etc/dconf/db/local.d/00-kubemdm-autolock":                         {0o644, "idle-delay=uint32 300"},
		"etc/dconf/db/local.d/locks/kubemdm-autolock":                      {0o644, "/org/gnome/desktop/session/idle-delay"},
		"etc/NetworkManager/system-connections/kubemdm-corp.nmconnection":  {0o600, "psk=s3cret-psk"},
		"usr/local/share/ca-certificates/kubemdm-root-ca.crt":              {0o644, "CA"},
		"etc/ssl/private/kubemdm-me.pem":                                   {0o600, "PRIVATE KEY"},
		"etc/modprobe.d/kubemdm-usb-storage.conf":                          {0o644, "install usb_storage /bin/false"},
		"etc/apt/apt.conf.d/52kubemdm-updates":                             {0o644, `APT::Periodic::Unattended-Upgrade "1";`},
		"etc/systemd/system/apt-daily-upgrade.timer.d/kubemdm-window.conf": {0o644, "RandomizedDelaySec=150m"},
	} {
		full := filepath.Join(root, path)
		b, err := os.ReadFile(full)
		if err != nil || !strings.Contains(string(b), want.contains) {
			t.Errorf("%s reads %q, %v; want it to contain %q", path, b, err, want.contains)
			continue
		}
		if fi, _ := os.Stat(full); fi.Mode().Perm() != want.mode {
			t.Errorf("%s has mode %#o, want %#o", path, fi.Mode().Perm(), want.mode)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc/modprobe.d/kubemdm-camera.conf")); err == nil {
		t.Error("an allowed camera got a blacklist")
	}
	for _, tool := range []string{"systemctl daemon-reload", "dconf update", "update-ca-certificates", "nmcli connection reload"} {
		if n := count(ran, tool); n != 1 {
			t.Errorf("%q ran %d times, want once", tool, n)
		}
	}

	// Unchanged: nothing is written and no tool runs.
	ran = nil
	l.Apply(ctx, &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{cfg}})
	if len(ran) != 0 {
		t.Errorf("a pass that changed nothing ran %q", ran)
	}

	// A tool that fails fails the configuration that needs it.
	ran = nil
	l.Run = func(argv ...string) error {
		if argv[0] == "update-ca-certificates" {
			return os.ErrPermission
		}
		return nil
	}
	cfg.Settings.Certificates[0].Pem = []byte("-----BEGIN CERTIFICATE-----\nCA2\n")
	if st := stateOf(l.Apply(ctx, &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{cfg}}), "baseline"); st.GetState() != "Failed" {
		t.Errorf("with update-ca-certificates failing, reported %v", st)
	}
	// It runs again on the next pass, though no file changed.
	l.Run = func(argv ...string) error { ran = append(ran, strings.Join(argv, " ")); return nil }
	ran = nil
	if st := stateOf(l.Apply(ctx, &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{cfg}}), "baseline"); st.GetState() != "Applied" || !slices.Equal(ran, []string{"update-ca-certificates"}) {
		t.Errorf("the pass after the failure reported %v and ran %q; want Applied after running update-ca-certificates again", st, ran)
	}

	l.Apply(ctx, &agentv1.DesiredConfig{})
	if b, _ := os.ReadFile(filepath.Join(root, "etc/security/faillock.conf")); string(b) != "# the host's\ndeny = 3\n" {
		t.Errorf("faillock.conf reads %q after the configuration went; want the host's own back", b)
	}
	for _, dir := range []string{"etc/security/pwquality.conf.d", "etc/NetworkManager/system-connections", "usr/local/share/ca-certificates", "etc/modprobe.d"} {
		if entries, _ := os.ReadDir(filepath.Join(root, dir)); len(entries) != 0 {
			t.Errorf("%s still holds %d files after the configuration went", dir, len(entries))
		}
	}
	for _, path := range []string{"etc/dconf/db/local.d/00-kubemdm-autolock", "etc/dconf/db/local.d/locks/kubemdm-autolock",
		"etc/ssl/private/kubemdm-me.pem", "etc/apt/apt.conf.d/52kubemdm-updates", "etc/systemd/system/apt-daily-upgrade.timer.d/kubemdm-window.conf"} {
		if _, err := os.Stat(filepath.Join(root, path)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there after the configuration went (%v)", path, err)
		}
	}
}

func TestFileSafe(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"corp", "corp"},
		{"Guest WiFi", "Guest_WiFi-"},
		{"../etc", "_etc-"},
		{"a/b", "a_b-"},
	} {
		if got := fileSafe(tc.in); !strings.HasPrefix(got, tc.want) || strings.ContainsAny(got, "/ ") || (got == tc.in) != (tc.want == tc.in) {
			t.Errorf("fileSafe(%q) = %q", tc.in, got)
		}
	}
	if fileSafe("a/b") == fileSafe("a_b") {
		t.Error("two names share a file")
	}
}
