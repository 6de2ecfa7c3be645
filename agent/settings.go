package agent

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// settingValues splits a configuration's settings into the paths the
// gateway merges by (docs/agent-protocol.md), each with a value that
// changes when the setting does.
func settingValues(s *agentv1.Settings) map[string]string {
	out := map[string]string{}
	msg := func(m proto.Message) string {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		return string(b)
	}
	if p := s.GetPasscode(); p != nil {
		if p.MinLength != nil {
			out["passcode.minLength"] = fmt.Sprint(p.GetMinLength())
		}
		if p.RequireAlphanumeric != nil {
			out["passcode.requireAlphanumeric"] = fmt.Sprint(p.GetRequireAlphanumeric())
		}
		if p.MaxFailedAttempts != nil {
			out["passcode.maxFailedAttempts"] = fmt.Sprint(p.GetMaxFailedAttempts())
		}
		if p.AutoLockSeconds != nil {
			out["passcode.autoLockSeconds"] = fmt.Sprint(p.GetAutoLockSeconds())
		}
	}
	if r := s.GetRestrictions(); r != nil {
		for path, v := range map[string]*bool{
			"restrictions.cameraDisabled": r.CameraDisabled, "restrictions.screenCaptureDisabled": r.ScreenCaptureDisabled,
			"restrictions.usbStorageDisabled": r.UsbStorageDisabled, "restrictions.bluetoothDisabled": r.BluetoothDisabled,
		} {
			if v != nil {
				out[path] = fmt.Sprint(*v)
			}
		}
	}
	for _, w := range s.GetWifi() {
		out["wifi["+w.GetSsid()+"]"] = msg(w)
	}
	for _, c := range s.GetCertificates() {
		out["certificates["+c.GetName()+"]"] = msg(c)
	}
	for _, a := range s.GetApps() {
		out["apps["+a.GetId()+"]"] = msg(a)
	}
	if u := s.GetSystemUpdate(); u != nil {
		out["systemUpdate"] = msg(u)
	}
	for _, f := range s.GetFiles() {
		out["files["+f.GetPath()+"]"] = msg(f)
	}
	for _, u := range s.GetSystemdUnits() {
		out["systemdUnits["+u.GetName()+"]"] = msg(u)
	}
	for _, p := range s.GetPackages() {
		out["packages["+p.GetName()+"]"] = msg(p)
	}
	if len(s.GetAppleProfile()) > 0 {
		out["appleProfile"] = string(s.GetAppleProfile())
	}
	if s.GetAndroidPolicyJson() != "" {
		out["androidPolicy"] = s.GetAndroidPolicyJson()
	}
	return out
}
