package agent

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"regexp"
	"strings"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// hostFile is a file that carries a setting on a Linux host.
type hostFile struct {
	path    string
	mode    fs.FileMode
	content string
}

// hostSetting is one setting as a Linux host takes it: the files that carry
// it, or why it cannot be carried.
type hostSetting struct {
	path        string
	files       []hostFile
	unsupported string
}

// hostSettings maps the settings a Linux host has a standard place for to
// their files: passcode rules to PAM pwquality and faillock and the
// screen lock to dconf, Wi-Fi to NetworkManager keyfiles, certificates to
// the trust store, restrictions to modprobe, the system update policy to
// unattended-upgrades. Each setting path has files of its own, so that two
// configurations that won different settings never write the same file.
// Files, units and packages are applied on their own; apps and the raw
// Apple and Android payloads have no meaning here.
func hostSettings(s *agentv1.Settings) []hostSetting {
	var out []hostSetting
	add := func(path string, files ...hostFile) { out = append(out, hostSetting{path: path, files: files}) }
	unsupported := func(path, why string) { out = append(out, hostSetting{path: path, unsupported: why}) }
	if p := s.GetPasscode(); p != nil {
		if p.MinLength != nil {
			add("passcode.minLength", hostFile{"/etc/security/pwquality.conf.d/kubemdm-minlen.conf", 0o644,
				fmt.Sprintf("# Managed by kubemdm: passcode.minLength\nminlen = %d\n", p.GetMinLength())})
		}
		if p.RequireAlphanumeric != nil {
			var files []hostFile
			if p.GetRequireAlphanumeric() {
				// A digit and at least one other class: letters, or symbols.
				files = append(files, hostFile{"/etc/security/pwquality.conf.d/kubemdm-alphanumeric.conf", 0o644,
					"# Managed by kubemdm: passcode.requireAlphanumeric\ndcredit = -1\nminclass = 2\n"})
			}
			add("passcode.requireAlphanumeric", files...)
		}
		if p.MaxFailedAttempts != nil {
			// faillock reads one file; the host's own comes back when the
			// setting goes.
			add("passcode.maxFailedAttempts", hostFile{"/etc/security/faillock.conf", 0o644,
				fmt.Sprintf("# Managed by kubemdm: passcode.maxFailedAttempts\ndeny = %d\nunlock_time = 900\n", p.GetMaxFailedAttempts())})
		}
		if p.AutoLockSeconds != nil {
			add("passcode.autoLockSeconds",
				hostFile{"/etc/dconf/db/local.d/00-kubemdm-autolock", 0o644, fmt.Sprintf(
					"# Managed by kubemdm: passcode.autoLockSeconds\n[org/gnome/desktop/session]\nidle-delay=uint32 %d\n\n[org/gnome/desktop/screensaver]\nlock-enabled=true\nlock-delay=uint32 0\n",
					p.GetAutoLockSeconds())},
				hostFile{"/etc/dconf/db/local.d/locks/kubemdm-autolock", 0o644,
					"/org/gnome/desktop/session/idle-delay\n/org/gnome/desktop/screensaver/lock-enabled\n/org/gnome/desktop/screensaver/lock-delay\n"})
		}
	}
	for _, w := range s.GetWifi() {
		path := "wifi[" + w.GetSsid() + "]"
		if f, err := nmKeyfile(w); err != nil {
			unsupported(path, err.Error())
		} else {
			add(path, f)
		}
	}
	for _, c := range s.GetCertificates() {
		name := fileSafe(c.GetName())
		if c.GetType() == "Identity" {
			add("certificates["+c.GetName()+"]", hostFile{"/etc/ssl/private/kubemdm-" + name + ".pem", 0o600, string(c.GetPem())})
		} else {
			add("certificates["+c.GetName()+"]", hostFile{"/usr/local/share/ca-certificates/kubemdm-" + name + ".crt", 0o644, string(c.GetPem())})
		}
	}
	if r := s.GetRestrictions(); r != nil {
		for _, m := range []struct {
			path    string
			set     *bool
			file    string
			modules []string
		}{
			{"restrictions.cameraDisabled", r.CameraDisabled, "camera", []string{"uvcvideo"}},
			{"restrictions.usbStorageDisabled", r.UsbStorageDisabled, "usb-storage", []string{"usb_storage", "uas"}},
			{"restrictions.bluetoothDisabled", r.BluetoothDisabled, "bluetooth", []string{"bluetooth", "btusb"}},
		} {
			if m.set == nil {
				continue
			}
			var files []hostFile
			if *m.set {
				var b strings.Builder
				fmt.Fprintf(&b, "# Managed by kubemdm: %s\n", m.path)
				for _, mod := range m.modules {
					fmt.Fprintf(&b, "blacklist %s\ninstall %s /bin/false\n", mod, mod)
				}
				files = append(files, hostFile{"/etc/modprobe.d/kubemdm-" + m.file + ".conf", 0o644, b.String()})
			}
			add(m.path, files...)
		}
		if r.ScreenCaptureDisabled != nil {
			unsupported("restrictions.screenCaptureDisabled", "a Linux desktop has no setting that stops screen capture")
		}
	}
	if u := s.GetSystemUpdate(); u != nil {
		add("systemUpdate", systemUpdateFiles(u)...)
	}
	for _, a := range s.GetApps() {
		unsupported("apps["+a.GetId()+"]", "the Linux agent installs packages (spec.settings.packages), not apps")
	}
	if len(s.GetAppleProfile()) > 0 {
		unsupported("appleProfile", "an Apple profile is for Apple devices")
	}
	if s.GetAndroidPolicyJson() != "" {
		unsupported("androidPolicy", "an Android policy is for Android devices")
	}
	return out
}

// nmKeyfile is a NetworkManager connection for a Wi-Fi network, readable by
// root alone since it holds the password.
func nmKeyfile(w *agentv1.WiFi) (hostFile, error) {
	sum := sha256.Sum256([]byte("kubemdm/wifi/" + w.GetSsid()))
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
	var b strings.Builder
	fmt.Fprintf(&b, "# Managed by kubemdm: wifi[%s]\n[connection]\nid=%s\nuuid=%s\ntype=wifi\n\n[wifi]\nmode=infrastructure\nssid=%s\n",
		w.GetSsid(), w.GetSsid(), uuid, w.GetSsid())
	switch w.GetSecurity() {
	case "", "None":
	case "WPA2":
		fmt.Fprintf(&b, "\n[wifi-security]\nkey-mgmt=wpa-psk\npsk=%s\n", w.GetPassword())
	case "WPA3":
		fmt.Fprintf(&b, "\n[wifi-security]\nkey-mgmt=sae\npsk=%s\n", w.GetPassword())
	default:
		return hostFile{}, fmt.Errorf("%s needs an identity and an EAP method, which the Configuration does not carry", w.GetSecurity())
	}
	b.WriteString("\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n")
	return hostFile{"/etc/NetworkManager/system-connections/kubemdm-" + fileSafe(w.GetSsid()) + ".nmconnection", 0o600, b.String()}, nil
}

// systemUpdateFiles set unattended-upgrades: on, off, or on within a daily
// window through a drop-in for apt-daily-upgrade.timer.
func systemUpdateFiles(u *agentv1.SystemUpdate) []hostFile {
	on := "1"
	if u.GetPolicy() == "Postponed" {
		on = "0"
	}
	files := []hostFile{{"/etc/apt/apt.conf.d/52kubemdm-updates", 0o644, fmt.Sprintf(
		"// Managed by kubemdm: systemUpdate (%s)\nAPT::Periodic::Update-Package-Lists \"%s\";\nAPT::Periodic::Unattended-Upgrade \"%s\";\n", u.GetPolicy(), on, on)}}
	if u.GetPolicy() == "Windowed" {
		files = append(files, hostFile{"/etc/systemd/system/apt-daily-upgrade.timer.d/kubemdm-window.conf", 0o644, fmt.Sprintf(
			"# Managed by kubemdm: systemUpdate window %s-%s\n[Timer]\nOnCalendar=\nOnCalendar=*-*-* %s\nRandomizedDelaySec=%dm\n",
			u.GetWindowStart(), u.GetWindowEnd(), u.GetWindowStart(), windowMinutes(u.GetWindowStart(), u.GetWindowEnd()))})
	}
	return files
}

// windowMinutes is the length of a daily HH:MM window, across midnight if
// it ends before it starts.
func windowMinutes(start, end string) int {
	var sh, sm, eh, em int
	if _, err := fmt.Sscanf(start, "%d:%d", &sh, &sm); err != nil {
		return 0
	}
	if _, err := fmt.Sscanf(end, "%d:%d", &eh, &em); err != nil {
		return 0
	}
	d := (eh*60 + em) - (sh*60 + sm)
	if d <= 0 {
		d += 24 * 60
	}
	return d
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// fileSafe makes a name usable as part of a file name: other characters
// become "_", with a hash when any did, so that two names never share a file.
func fileSafe(name string) string {
	safe := unsafeName.ReplaceAllString(name, "_")
	if safe == name && name != "" && !strings.HasPrefix(name, ".") {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return fmt.Sprintf("%s-%x", strings.TrimLeft(safe, "."), sum[:4])
}
