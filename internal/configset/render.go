package configset

import (
	"strconv"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// Render turns settings into what the agent receives, with the content of
// the Secrets and ConfigMaps they name. Those values go only into this
// message, which only the device's mTLS stream carries.
func Render(s *mdmv1alpha1.ConfigurationSettings, payloads Payloads) (*agentv1.Settings, error) {
	out := &agentv1.Settings{AppleProfile: s.AppleProfile}
	if p := s.Passcode; p != nil {
		out.Passcode = &agentv1.Passcode{MinLength: p.MinLength, RequireAlphanumeric: p.RequireAlphanumeric,
			MaxFailedAttempts: p.MaxFailedAttempts, AutoLockSeconds: p.AutoLockSeconds}
	}
	for _, w := range s.WiFi {
		net := &agentv1.WiFi{Ssid: w.SSID, Security: string(w.Security)}
		if w.PasswordSecretRef != nil {
			v, err := payloads.Value(Ref{Kind: "Secret", Name: w.PasswordSecretRef.Name, Key: w.PasswordSecretRef.Key})
			if err != nil {
				return nil, err
			}
			net.Password = string(v)
		}
		out.Wifi = append(out.Wifi, net)
	}
	for _, c := range s.Certificates {
		v, err := payloads.Value(Ref{Kind: "Secret", Name: c.SecretRef.Name, Key: c.SecretRef.Key})
		if err != nil {
			return nil, err
		}
		out.Certificates = append(out.Certificates, &agentv1.CertificatePayload{Name: c.Name, Type: string(c.Type), Pem: v})
	}
	if r := s.Restrictions; r != nil {
		out.Restrictions = &agentv1.Restrictions{CameraDisabled: r.CameraDisabled, ScreenCaptureDisabled: r.ScreenCaptureDisabled,
			UsbStorageDisabled: r.USBStorageDisabled, BluetoothDisabled: r.BluetoothDisabled}
	}
	for _, a := range s.Apps {
		out.Apps = append(out.Apps, &agentv1.App{Id: a.ID, InstallType: string(a.InstallType), Version: a.Version})
	}
	if u := s.SystemUpdate; u != nil {
		out.SystemUpdate = &agentv1.SystemUpdate{Policy: string(u.Policy), WindowStart: u.WindowStart, WindowEnd: u.WindowEnd}
	}
	for _, f := range s.Files {
		file := &agentv1.File{Path: f.Path, Mode: 0o644, Owner: f.Owner, Group: f.Group}
		if m, err := strconv.ParseUint(f.Mode, 8, 32); err == nil && f.Mode != "" {
			file.Mode = uint32(m)
		}
		switch {
		case f.Content != nil:
			file.Content = []byte(*f.Content)
		case f.SecretRef != nil:
			v, err := payloads.Value(Ref{Kind: "Secret", Name: f.SecretRef.Name, Key: f.SecretRef.Key})
			if err != nil {
				return nil, err
			}
			file.Content = v
		case f.ConfigMapRef != nil:
			v, err := payloads.Value(Ref{Kind: "ConfigMap", Name: f.ConfigMapRef.Name, Key: f.ConfigMapRef.Key})
			if err != nil {
				return nil, err
			}
			file.Content = v
		}
		out.Files = append(out.Files, file)
	}
	for _, u := range s.SystemdUnits {
		out.SystemdUnits = append(out.SystemdUnits, &agentv1.SystemdUnit{Name: u.Name, Enabled: u.Enabled, Content: u.Content})
	}
	for _, p := range s.Packages {
		out.Packages = append(out.Packages, &agentv1.Package{Name: p.Name, State: string(p.State), Version: p.Version})
	}
	if p := s.AndroidPolicy; p != nil {
		out.AndroidPolicyJson = string(p.Raw)
	}
	return out, nil
}
