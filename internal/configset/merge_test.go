package configset

import (
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

var epoch = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func config(name string, priority int32, age int, settings mdmv1alpha1.ConfigurationSettings, platforms ...mdmv1alpha1.Platform) mdmv1alpha1.Configuration {
	return mdmv1alpha1.Configuration{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(epoch.Add(-time.Duration(age) * time.Hour))},
		Spec: mdmv1alpha1.ConfigurationSpec{Priority: priority, Settings: settings, Platforms: platforms,
			DeviceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"fleet": "a"}}},
	}
}

func TestMerge(t *testing.T) {
	passcode := func(n int32) mdmv1alpha1.ConfigurationSettings {
		return mdmv1alpha1.ConfigurationSettings{Passcode: &mdmv1alpha1.PasscodeSettings{MinLength: ptr.To(n)}}
	}
	device := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"fleet": "a"}},
		Spec: mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformAndroid}}
	base := mdmv1alpha1.ConfigurationSettings{
		Passcode: &mdmv1alpha1.PasscodeSettings{MinLength: ptr.To[int32](6), AutoLockSeconds: ptr.To[int32](60)},
		WiFi:     []mdmv1alpha1.WiFiNetwork{{SSID: "office", Security: "None"}, {SSID: "lab", Security: "None"}},
	}
	strict := mdmv1alpha1.ConfigurationSettings{
		Passcode: &mdmv1alpha1.PasscodeSettings{MinLength: ptr.To[int32](12)},
		WiFi:     []mdmv1alpha1.WiFiNetwork{{SSID: "lab", Security: "WPA2Enterprise"}},
	}
	for name, tc := range map[string]struct {
		configs  []mdmv1alpha1.Configuration
		assigned []mdmv1alpha1.ConfigurationAssignment
		// want maps a configuration to the paths it won and those it lost.
		won  map[string][]string
		lost map[string][]mdmv1alpha1.SettingStatus
	}{
		"higher priority wins per setting, the rest stays with the loser": {
			configs: []mdmv1alpha1.Configuration{config("base", 1, 5, base), config("strict", 10, 1, strict),
				config("kiosk", 0, 9, mdmv1alpha1.ConfigurationSettings{Apps: []mdmv1alpha1.AppSetting{{ID: "com.example.kiosk", InstallType: "Kiosk"}}})},
			won: map[string][]string{"base": {"passcode.autoLockSeconds", "wifi[office]"}, "strict": {"passcode.minLength", "wifi[lab]"}, "kiosk": {"apps[com.example.kiosk]"}},
			lost: map[string][]mdmv1alpha1.SettingStatus{"base": {
				{Path: "passcode.minLength", Reason: "Overridden", Message: "Configuration strict sets it"},
				{Path: "wifi[lab]", Reason: "Overridden", Message: "Configuration strict sets it"}}},
		},
		"equal priority: the older wins": {
			configs: []mdmv1alpha1.Configuration{config("new", 5, 1, passcode(8)), config("old", 5, 3, passcode(10))},
			won:     map[string][]string{"old": {"passcode.minLength"}, "new": nil},
			lost:    map[string][]mdmv1alpha1.SettingStatus{"new": {{Path: "passcode.minLength", Reason: "Overridden", Message: "Configuration old sets it"}}},
		},
		"equal priority and age: the lower name wins": {
			configs: []mdmv1alpha1.Configuration{config("b", 5, 1, passcode(8)), config("a", 5, 1, passcode(10))},
			won:     map[string][]string{"a": {"passcode.minLength"}, "b": nil},
			lost:    map[string][]mdmv1alpha1.SettingStatus{"b": {{Path: "passcode.minLength", Reason: "Overridden", Message: "Configuration a sets it"}}},
		},
		"an assignment's priority overrides the Configuration's": {
			configs:  []mdmv1alpha1.Configuration{config("base", 1, 5, passcode(6)), config("strict", 10, 1, passcode(12))},
			assigned: []mdmv1alpha1.ConfigurationAssignment{{Name: "base", Priority: ptr.To[int32](20)}},
			won:      map[string][]string{"base": {"passcode.minLength"}, "strict": nil},
			lost:     map[string][]mdmv1alpha1.SettingStatus{"strict": {{Path: "passcode.minLength", Reason: "Overridden", Message: "Configuration base sets it"}}},
		},
		"excluded, unsupported and missing configurations set nothing": {
			configs: []mdmv1alpha1.Configuration{config("base", 1, 5, passcode(6)), config("strict", 10, 1, passcode(12)),
				config("ios", 50, 1, passcode(14), mdmv1alpha1.PlatformIOS)},
			assigned: []mdmv1alpha1.ConfigurationAssignment{{Name: "strict", Excluded: true}, {Name: "ghost"}},
			won:      map[string][]string{"base": {"passcode.minLength"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := device.DeepCopy()
			d.Spec.Configurations = tc.assigned
			applied, err := Merge(Targets(d, tc.configs))
			if err != nil {
				t.Fatal(err)
			}
			won := map[string][]string{}
			lost := map[string][]mdmv1alpha1.SettingStatus{}
			for _, a := range applied {
				won[a.Name] = nil
				if a.Won != nil {
					s, err := flatten(a.Won)
					if err != nil {
						t.Fatal(err)
					}
					won[a.Name] = sortedKeys(s)
				}
				if a.Lost != nil {
					lost[a.Name] = a.Lost
				}
			}
			if !reflect.DeepEqual(won, tc.won) {
				t.Errorf("won %v, want %v", won, tc.won)
			}
			if tc.lost == nil {
				tc.lost = map[string][]mdmv1alpha1.SettingStatus{}
			}
			if !reflect.DeepEqual(lost, tc.lost) {
				t.Errorf("lost %v, want %v", lost, tc.lost)
			}
		})
	}
}

func TestTargets(t *testing.T) {
	d := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"fleet": "a"}},
		Spec: mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformLinux,
			Configurations: []mdmv1alpha1.ConfigurationAssignment{{Name: "direct"}, {Name: "ghost"}, {Name: "selected", Excluded: true}}}}
	other := config("other", 0, 1, mdmv1alpha1.ConfigurationSettings{})
	other.Spec.DeviceSelector.MatchLabels = map[string]string{"fleet": "b"}
	direct := config("direct", 3, 1, mdmv1alpha1.ConfigurationSettings{})
	direct.Spec.DeviceSelector = nil
	got := Targets(d, []mdmv1alpha1.Configuration{config("selected", 2, 1, mdmv1alpha1.ConfigurationSettings{}), other, direct,
		config("ios", 0, 1, mdmv1alpha1.ConfigurationSettings{}, mdmv1alpha1.PlatformIOS)})
	var summary []string
	for _, tg := range got {
		s := tg.Name
		if tg.Config == nil {
			s += " missing"
		}
		if tg.Excluded {
			s += " excluded"
		}
		if tg.Unsupported {
			s += " unsupported"
		}
		summary = append(summary, s)
	}
	want := []string{"direct", "ghost missing", "ios unsupported", "selected excluded"}
	if !reflect.DeepEqual(summary, want) {
		t.Errorf("targets %v, want %v", summary, want)
	}
}

func TestFlattenRoundTrip(t *testing.T) {
	in := &mdmv1alpha1.ConfigurationSettings{
		Passcode:     &mdmv1alpha1.PasscodeSettings{MinLength: ptr.To[int32](6), RequireAlphanumeric: ptr.To(false)},
		Restrictions: &mdmv1alpha1.Restrictions{CameraDisabled: ptr.To(true)},
		Files:        []mdmv1alpha1.FileSetting{{Path: "/etc/b", Content: ptr.To("b")}, {Path: "/etc/a", Content: ptr.To("a")}},
		SystemUpdate: &mdmv1alpha1.SystemUpdatePolicy{Policy: "Automatic"},
		AppleProfile: []byte("<plist/>"),
	}
	flat, err := flatten(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"appleProfile", "files[/etc/a]", "files[/etc/b]", "passcode.minLength", "passcode.requireAlphanumeric", "restrictions.cameraDisabled", "systemUpdate"}
	if got := sortedKeys(flat); !reflect.DeepEqual(got, want) {
		t.Fatalf("paths %v, want %v", got, want)
	}
	var all []setting
	for _, s := range flat {
		all = append(all, s)
	}
	out, err := unflatten(all)
	if err != nil {
		t.Fatal(err)
	}
	in.Files[0], in.Files[1] = in.Files[1], in.Files[0]
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip gave %+v, want %+v", out, in)
	}
}
