package enrollment

import (
	"encoding/json"
	"strings"
	"testing"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func TestNewTokenIsWellFormedAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		v, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !WellFormed(v) {
			t.Fatalf("NewToken gave a value WellFormed refuses: %q", v)
		}
		if seen[v] {
			t.Fatalf("NewToken repeated a value")
		}
		seen[v] = true
		if !Matches(v, Hash(v)) || !Matches(v, strings.ToUpper(Hash(v))) {
			t.Fatalf("a value does not match its own hash")
		}
		if Matches(v+"x", Hash(v)) {
			t.Fatalf("a different value matches")
		}
	}
}

func TestWellFormed(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", false},
		{TokenPrefix, false},
		{"kmdm_et_short", false},
		{TokenPrefix + strings.Repeat("A", 43), true},
		{TokenPrefix + strings.Repeat("A", 44), false},
		{TokenPrefix + strings.Repeat("+", 43), false},
		{"other_" + strings.Repeat("A", 43), false},
	} {
		if got := WellFormed(tc.in); got != tc.want {
			t.Errorf("WellFormed(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func provisioning(wifi *mdmv1alpha1.ProvisioningWifi) *mdmv1alpha1.AndroidProvisioning {
	return &mdmv1alpha1.AndroidProvisioning{
		DPCComponentName:     "io.kubemdm.agent/.AdminReceiver",
		DPCDownloadURL:       "https://example.com/a.apk",
		DPCSignatureChecksum: strings.Repeat("A", 43),
		Wifi:                 wifi,
	}
}

func TestPayload(t *testing.T) {
	const wifiPassword = "hunter2"
	for _, tc := range []struct {
		name    string
		spec    mdmv1alpha1.EnrollmentTokenSpec
		want    map[string]any
		without []string
	}{{
		name:    "non-Android token: admin extras only",
		spec:    mdmv1alpha1.EnrollmentTokenSpec{Platform: mdmv1alpha1.PlatformLinux},
		want:    map[string]any{},
		without: []string{androidComponentName, androidWifiSSID},
	}, {
		name: "Android without Wi-Fi",
		spec: mdmv1alpha1.EnrollmentTokenSpec{Platform: mdmv1alpha1.PlatformAndroid, Provisioning: provisioning(nil)},
		want: map[string]any{
			androidComponentName:  "io.kubemdm.agent/.AdminReceiver",
			androidDownloadURL:    "https://example.com/a.apk",
			androidSkipEncryption: false,
		},
		without: []string{androidWifiSSID, androidWifiPassword},
	}, {
		name: "Android with WPA",
		spec: mdmv1alpha1.EnrollmentTokenSpec{Platform: mdmv1alpha1.PlatformAndroid, Provisioning: provisioning(
			&mdmv1alpha1.ProvisioningWifi{SSID: "corp", SecurityType: "WPA", Hidden: true})},
		want: map[string]any{androidWifiSSID: "corp", androidWifiSecurity: "WPA", androidWifiPassword: wifiPassword, androidWifiHidden: true},
	}, {
		name: "Android with an open network: no password even if one is given",
		spec: mdmv1alpha1.EnrollmentTokenSpec{Platform: mdmv1alpha1.PlatformAndroid, Provisioning: provisioning(
			&mdmv1alpha1.ProvisioningWifi{SSID: "guest", SecurityType: "None"})},
		want:    map[string]any{androidWifiSSID: "guest", androidWifiSecurity: "NONE"},
		without: []string{androidWifiPassword},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := Payload(PayloadInput{Token: "tok", EnrollmentHost: "gw:8443", Namespace: "ns", Spec: tc.spec, WifiPassword: wifiPassword})
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			for _, k := range tc.without {
				if _, ok := got[k]; ok {
					t.Errorf("%s is present, want it absent", k)
				}
			}
			extras, _ := got[androidAdminExtras].(map[string]any)
			if extras[ExtraToken] != "tok" || extras[ExtraEnrollmentHost] != "gw:8443" || extras[ExtraNamespace] != "ns" {
				t.Errorf("admin extras = %v", extras)
			}
		})
	}
}

func TestQRCodePNGRejectsOversizedPayload(t *testing.T) {
	// A QR code holds under 3 KB; a payload beyond that must be an error,
	// not a truncated code.
	if _, err := QRCodePNG([]byte(strings.Repeat("x", 8000))); err == nil {
		t.Fatal("want an error for a payload too large for a QR code")
	}
}

func FuzzWellFormed(f *testing.F) {
	f.Add(TokenPrefix + strings.Repeat("A", 43))
	f.Add("")
	f.Add("kmdm_et_\x00")
	f.Fuzz(func(t *testing.T, s string) {
		if WellFormed(s) && !strings.HasPrefix(s, TokenPrefix) {
			t.Fatalf("accepted %q without the prefix", s)
		}
		_ = Matches(s, Hash(s))
	})
}
