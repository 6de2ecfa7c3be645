package enrollment

import (
	"encoding/json"
	"fmt"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// Keys of the Android device-owner provisioning payload, as the Android
// platform defines them (DevicePolicyManager EXTRA_PROVISIONING_*).
const (
	androidComponentName   = "android.app.extra.PROVISIONING_DEVICE_ADMIN_COMPONENT_NAME"
	androidDownloadURL     = "android.app.extra.PROVISIONING_DEVICE_ADMIN_PACKAGE_DOWNLOAD_LOCATION"
	androidChecksum        = "android.app.extra.PROVISIONING_DEVICE_ADMIN_SIGNATURE_CHECKSUM"
	androidWifiSSID        = "android.app.extra.PROVISIONING_WIFI_SSID"
	androidWifiSecurity    = "android.app.extra.PROVISIONING_WIFI_SECURITY_TYPE"
	androidWifiPassword    = "android.app.extra.PROVISIONING_WIFI_PASSWORD"
	androidWifiHidden      = "android.app.extra.PROVISIONING_WIFI_HIDDEN"
	androidSkipEncryption  = "android.app.extra.PROVISIONING_SKIP_ENCRYPTION"
	androidLeaveSystemApps = "android.app.extra.PROVISIONING_LEAVE_ALL_SYSTEM_APPS_ENABLED"
	androidAdminExtras     = "android.app.extra.PROVISIONING_ADMIN_EXTRAS_BUNDLE"
)

// Keys of the admin extras bundle, which the kubemdm agent reads on first start.
const (
	ExtraToken          = "io.kubemdm.ENROLLMENT_TOKEN"
	ExtraEnrollmentHost = "io.kubemdm.ENROLLMENT_HOST"
	ExtraNamespace      = "io.kubemdm.NAMESPACE"
	ExtraDPCBuildTag    = "io.kubemdm.DPC_BUILD_TAG"
	ExtraManagementMode = "io.kubemdm.MANAGEMENT_MODE"
	// ExtraGatewayCAPin is the hex SHA-256 of the gateway's CA certificate:
	// the device trusts a self-signed gateway from its first call without
	// ever skipping verification.
	ExtraGatewayCAPin = "io.kubemdm.GATEWAY_CA_SHA256"
)

// PayloadInput is what a provisioning payload is built from.
type PayloadInput struct {
	Token          string
	EnrollmentHost string
	Namespace      string
	Spec           mdmv1alpha1.EnrollmentTokenSpec
	// WifiPassword is the value behind spec.provisioning.wifi.passwordSecretRef.
	WifiPassword string
	// GatewayCAPin is the SHA-256 pin of the gateway's CA, when known.
	GatewayCAPin string
}

// Payload builds the JSON a device scans to enroll. Android tokens with
// provisioning get the device-owner payload with the token in the admin
// extras bundle; every other token gets the admin extras bundle alone, which
// the agent accepts as-is.
func Payload(in PayloadInput) ([]byte, error) {
	extras := map[string]string{
		ExtraToken:          in.Token,
		ExtraEnrollmentHost: in.EnrollmentHost,
		ExtraNamespace:      in.Namespace,
	}
	if in.GatewayCAPin != "" {
		extras[ExtraGatewayCAPin] = in.GatewayCAPin
	}
	if in.Spec.DPCBuildTag != "" {
		extras[ExtraDPCBuildTag] = in.Spec.DPCBuildTag
	}
	if in.Spec.ManagementMode != "" {
		extras[ExtraManagementMode] = string(in.Spec.ManagementMode)
	}
	p := in.Spec.Provisioning
	if p == nil {
		return marshal(map[string]any{androidAdminExtras: extras})
	}
	out := map[string]any{
		androidComponentName:   p.DPCComponentName,
		androidDownloadURL:     p.DPCDownloadURL,
		androidChecksum:        p.DPCSignatureChecksum,
		androidSkipEncryption:  p.SkipEncryption,
		androidLeaveSystemApps: p.LeaveAllSystemAppsEnabled,
		androidAdminExtras:     extras,
	}
	if w := p.Wifi; w != nil {
		out[androidWifiSSID] = w.SSID
		out[androidWifiSecurity] = androidSecurityType(w.SecurityType)
		out[androidWifiHidden] = w.Hidden
		if w.SecurityType != "None" {
			out[androidWifiPassword] = in.WifiPassword
		}
	}
	return marshal(out)
}

// androidSecurityType maps the API's CamelCase value to Android's spelling.
func androidSecurityType(t mdmv1alpha1.WifiSecurityType) string {
	if t == "" || t == "None" {
		return "NONE"
	}
	return string(t)
}

func marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding provisioning payload: %w", err)
	}
	return b, nil
}
