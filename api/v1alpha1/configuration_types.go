package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// LabelDevicePayload with value "true" marks the Secrets and ConfigMaps a
// Configuration may carry to devices. Only those are cached and read, so a
// Configuration cannot be used to read any other Secret of its namespace.
const LabelDevicePayload = "mdm.kubemdm.io/device-payload"

// ConfigurationSpec is what a configuration puts on devices and which
// devices it goes to.
type ConfigurationSpec struct {
	// settings the configuration puts on a device. Each is optional; a
	// setting several Configurations of one device set is taken from the
	// one with the higher priority, then the older, then the lower name.
	// +required
	Settings ConfigurationSettings `json:"settings"`

	// platforms the configuration applies to; empty means every platform.
	// A targeted device of another platform reports it Unsupported.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=6
	Platforms []Platform `json:"platforms,omitempty"`

	// priority decides which configuration wins a setting that several set
	// on one device: the higher. A Device's assignment may override it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Priority int32 `json:"priority,omitempty"`

	// deviceSelector binds the configuration to every Device of its
	// namespace whose labels match. Without it, only Devices that name it
	// in spec.configurations get it.
	// +optional
	DeviceSelector *metav1.LabelSelector `json:"deviceSelector,omitempty"`

	// compliance rules a device must meet while this configuration applies
	// to it; a device that fails one is NonCompliant, naming the rule and
	// this configuration.
	// +optional
	Compliance *ComplianceRules `json:"compliance,omitempty"`

	// rollout stages a new revision over batches of devices. Without it a
	// new revision goes to every targeted device at once.
	// +optional
	Rollout *RolloutSpec `json:"rollout,omitempty"`
}

// ComplianceRules are checked against the facts the device reports.
// +kubebuilder:validation:MinProperties=1
type ComplianceRules struct {
	// minOSVersion the device must run, compared numerically part by part
	// ("17.4" < "17.10").
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)*$`
	MinOSVersion string `json:"minOSVersion,omitempty"`
	// requirePasscode: the device must report a screen lock set.
	// +optional
	RequirePasscode bool `json:"requirePasscode,omitempty"`
	// requireEncryption: the device must report its storage encrypted.
	// +optional
	RequireEncryption bool `json:"requireEncryption,omitempty"`
}

// RolloutSpec stages a new revision.
type RolloutSpec struct {
	// maxUnavailable is the size of a batch: how many devices take the new
	// revision at a time, and how many may fail it before the rollout
	// pauses. A count, or a percentage of the targeted devices rounded up.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 : self.matches('^[1-9][0-9]?%$|^100%$')",message="maxUnavailable must be a count of at least 1 or a percentage from 1% to 100%"
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// pause holds the rollout after the batch under way: no further
	// devices are admitted until it is false again.
	// +optional
	Pause bool `json:"pause,omitempty"`
}

// ConfigurationSettings are the typed settings and raw platform payloads.
// +kubebuilder:validation:MinProperties=1
type ConfigurationSettings struct {
	// +optional
	Passcode *PasscodeSettings `json:"passcode,omitempty"`

	// wifi networks, one per SSID.
	// +optional
	// +listType=map
	// +listMapKey=ssid
	// +kubebuilder:validation:MaxItems=32
	WiFi []WiFiNetwork `json:"wifi,omitempty"`

	// certificates to install, one per name.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Certificates []CertificatePayload `json:"certificates,omitempty"`

	// +optional
	Restrictions *Restrictions `json:"restrictions,omitempty"`

	// apps to install, offer or block, one per id.
	// +optional
	// +listType=map
	// +listMapKey=id
	// +kubebuilder:validation:MaxItems=128
	// +kubebuilder:validation:XValidation:rule="self.filter(a, a.installType == 'Kiosk').size() <= 1",message="at most one app may have installType Kiosk"
	Apps []AppSetting `json:"apps,omitempty"`

	// +optional
	SystemUpdate *SystemUpdatePolicy `json:"systemUpdate,omitempty"`

	// files the Linux agent writes, one per path.
	// +optional
	// +listType=map
	// +listMapKey=path
	// +kubebuilder:validation:MaxItems=64
	Files []FileSetting `json:"files,omitempty"`

	// systemdUnits the Linux agent installs, one per name.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	SystemdUnits []SystemdUnitSetting `json:"systemdUnits,omitempty"`

	// packages the Linux agent installs or removes, one per name.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=128
	Packages []PackageSetting `json:"packages,omitempty"`

	// appleProfile is a .mobileconfig, carried to iOS devices as it is.
	// +optional
	// +kubebuilder:validation:MaxLength=262144
	AppleProfile []byte `json:"appleProfile,omitempty"`

	// androidPolicy is an Android Management API policy fragment (a JSON
	// object), carried to Android devices as it is.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:MinProperties=1
	AndroidPolicy *runtime.RawExtension `json:"androidPolicy,omitempty"`
}

// PasscodeSettings is the device's screen lock policy.
type PasscodeSettings struct {
	// minLength of the passcode.
	// +optional
	// +kubebuilder:validation:Minimum=4
	// +kubebuilder:validation:Maximum=64
	MinLength *int32 `json:"minLength,omitempty"`
	// requireAlphanumeric passcodes.
	// +optional
	RequireAlphanumeric *bool `json:"requireAlphanumeric,omitempty"`
	// maxFailedAttempts before the device wipes itself.
	// +optional
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=100
	MaxFailedAttempts *int32 `json:"maxFailedAttempts,omitempty"`
	// autoLockSeconds of inactivity before the screen locks.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	AutoLockSeconds *int32 `json:"autoLockSeconds,omitempty"`
}

// WiFiSecurity is a Wi-Fi network's security.
// +kubebuilder:validation:Enum=None;WPA2;WPA3;WPA2Enterprise
type WiFiSecurity string

// WiFiNetwork is a Wi-Fi network the device joins.
// +kubebuilder:validation:XValidation:rule="self.security == 'None' ? !has(self.passwordSecretRef) : (self.security == 'WPA2Enterprise' || has(self.passwordSecretRef))",message="passwordSecretRef is required for WPA2 and WPA3 networks and not allowed for open ones"
type WiFiNetwork struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	SSID string `json:"ssid"`
	// +required
	Security WiFiSecurity `json:"security"`
	// passwordSecretRef names the pre-shared key in a Secret labelled
	// mdm.kubemdm.io/device-payload=true.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`
}

// CertificateType says what an installed certificate is for.
// +kubebuilder:validation:Enum=CA;Identity
type CertificateType string

// CertificatePayload is a certificate to install on the device.
type CertificatePayload struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// +required
	Type CertificateType `json:"type"`
	// secretRef names the PEM (a CA certificate, or an identity's
	// certificate and key) in a Secret labelled
	// mdm.kubemdm.io/device-payload=true.
	// +required
	SecretRef SecretKeyRef `json:"secretRef"`
}

// Restrictions turn device features off.
type Restrictions struct {
	// +optional
	CameraDisabled *bool `json:"cameraDisabled,omitempty"`
	// +optional
	ScreenCaptureDisabled *bool `json:"screenCaptureDisabled,omitempty"`
	// +optional
	USBStorageDisabled *bool `json:"usbStorageDisabled,omitempty"`
	// +optional
	BluetoothDisabled *bool `json:"bluetoothDisabled,omitempty"`
}

// AppInstallType is what the device does with an app.
// +kubebuilder:validation:Enum=Required;Available;Blocked;Kiosk
type AppInstallType string

// AppSetting is one app on the device.
type AppSetting struct {
	// id is the app's package name or bundle id.
	// +required
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)+$`
	ID string `json:"id"`
	// +required
	InstallType AppInstallType `json:"installType"`
	// version pins the app; empty means the latest.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)*([-+][0-9A-Za-z.-]+)?$`
	Version string `json:"version,omitempty"`
}

// SystemUpdateType is when the device installs OS updates.
// +kubebuilder:validation:Enum=Automatic;Windowed;Postponed
type SystemUpdateType string

// SystemUpdatePolicy is when the device installs OS updates.
// +kubebuilder:validation:XValidation:rule="self.policy == 'Windowed' ? (has(self.windowStart) && has(self.windowEnd)) : (!has(self.windowStart) && !has(self.windowEnd))",message="windowStart and windowEnd are required for the Windowed policy and allowed only for it"
type SystemUpdatePolicy struct {
	// +required
	Policy SystemUpdateType `json:"policy"`
	// windowStart is the local time the window opens, HH:MM.
	// +optional
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	WindowStart string `json:"windowStart,omitempty"`
	// windowEnd is the local time the window closes, HH:MM.
	// +optional
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	WindowEnd string `json:"windowEnd,omitempty"`
}

// ConfigMapKeyRef names a key in a ConfigMap of the object's namespace.
type ConfigMapKeyRef struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// FileSetting is a file the Linux agent writes and owns.
// +kubebuilder:validation:XValidation:rule="[has(self.content), has(self.configMapRef), has(self.secretRef)].filter(x, x).size() == 1",message="a file needs exactly one of content, configMapRef and secretRef"
type FileSetting struct {
	// path is absolute and clean: no "..", no "//", no trailing "/".
	// +required
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/') && self != '/' && !self.endsWith('/') && !self.contains('//') && !self.split('/').exists(p, p == '..' || p == '.')",message="path must be absolute and clean, such as /etc/motd (no '.', '..', '//' or trailing '/')"
	Path string `json:"path"`
	// mode is the file's permission bits in octal, such as "0644".
	// +optional
	// +kubebuilder:default="0644"
	// +kubebuilder:validation:Pattern=`^0?[0-7]{3}$`
	Mode string `json:"mode,omitempty"`
	// owner is the user that owns the file, by name (as the host's
	// /etc/passwd has it) or numeric ID; root when unset.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([a-z_][a-z0-9_-]*[$]?|[0-9]+)$`
	Owner string `json:"owner,omitempty"`
	// group owns the file, by name (as the host's /etc/group has it) or
	// numeric ID; root when unset.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([a-z_][a-z0-9_-]*[$]?|[0-9]+)$`
	Group string `json:"group,omitempty"`
	// content of the file.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	Content *string `json:"content,omitempty"`
	// configMapRef names the content in a ConfigMap labelled
	// mdm.kubemdm.io/device-payload=true.
	// +optional
	ConfigMapRef *ConfigMapKeyRef `json:"configMapRef,omitempty"`
	// secretRef names the content in a Secret labelled
	// mdm.kubemdm.io/device-payload=true.
	// +optional
	SecretRef *SecretKeyRef `json:"secretRef,omitempty"`
}

// SystemdUnitSetting is a systemd unit the Linux agent installs.
type SystemdUnitSetting struct {
	// +required
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9:_.@-]+\.(service|timer|socket|path|mount|target)$`
	Name string `json:"name"`
	// enabled starts the unit at boot.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// content of the unit file; empty manages only whether an installed
	// unit is enabled.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	Content string `json:"content,omitempty"`
}

// PackageState is whether a package should be installed.
// +kubebuilder:validation:Enum=Present;Absent
type PackageState string

// PackageSetting is a package the Linux agent installs or removes.
// +kubebuilder:validation:XValidation:rule="self.state == 'Present' || !has(self.version)",message="version is only allowed for a Present package"
type PackageSetting struct {
	// +required
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9+.-]+$`
	Name string `json:"name"`
	// +required
	State PackageState `json:"state"`
	// version pins a Present package.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$`
	Version string `json:"version,omitempty"`
}

// Configuration condition reasons.
const (
	// ConfigurationReasonRevised: the content hash is current.
	ConfigurationReasonRevised = "Revised"
	// ConfigurationReasonPayloadNotAllowed: a referenced Secret or
	// ConfigMap lacks the device-payload label.
	ConfigurationReasonPayloadNotAllowed = "PayloadNotAllowed"
	// ConfigurationReasonPayloadMissing: a referenced Secret, ConfigMap or
	// key does not exist (yet).
	ConfigurationReasonPayloadMissing = "PayloadMissing"
	// ConfigurationReasonRolloutPaused: more admitted devices failed the
	// new revision than maxUnavailable allows.
	ConfigurationReasonRolloutPaused = "RolloutPaused"
	// ConfigurationReasonRollingOut: batches of devices take the new
	// revision.
	ConfigurationReasonRollingOut = "RollingOut"
	// ConfigurationReasonPausedBySpec: spec.rollout.pause holds the
	// rollout.
	ConfigurationReasonPausedBySpec = "PausedBySpec"
)

// ConfigurationStatus is the observed state of a Configuration.
type ConfigurationStatus struct {
	// observedGeneration is the generation last settled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, and Reconciling or Stalled while true.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// revision is a hash of the settings with the content of the Secrets
	// and ConfigMaps they name; it changes whenever what devices receive
	// changes.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Revision string `json:"revision,omitempty"`

	// revisionTime is when revision took its value. A device is given the
	// controller's apply grace from then (or from its admission in a
	// staged rollout) before a row at another revision makes it
	// NonCompliant.
	// +optional
	RevisionTime *metav1.Time `json:"revisionTime,omitempty"`

	// devices counts the Devices the configuration targets by how far
	// each got, from their status.configurations rows as of their last
	// report. A device that has yet to report this revision is pending.
	// +optional
	Devices *ConfigurationDeviceCounts `json:"devices,omitempty"`

	// rollout is the staged rollout of revision, while one is under way or
	// paused; absent when every targeted device may take the revision.
	// +optional
	Rollout *RolloutStatus `json:"rollout,omitempty"`
}

// RolloutStatus is a staged rollout.
type RolloutStatus struct {
	// revision being rolled out.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Revision string `json:"revision"`
	// previousRevision is what devices not yet admitted keep; its settings
	// are in the ControllerRevision named after the Configuration and it.
	// +required
	// +kubebuilder:validation:MaxLength=64
	PreviousRevision string `json:"previousRevision"`
	// admittedBelow admits the devices whose rollout hash (SHA-256 of the
	// Device UID, "/" and the revision, in hex) sorts below it.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	AdmittedBelow string `json:"admittedBelow,omitempty"`
	// admittedTime is when the last batch was admitted.
	// +optional
	AdmittedTime *metav1.Time `json:"admittedTime,omitempty"`
	// admitted devices, of targeted.
	Admitted int32 `json:"admitted"`
	// updated: admitted devices that applied the revision.
	Updated int32 `json:"updated"`
	// failed: admitted devices that failed it.
	Failed int32 `json:"failed"`
	// pending: targeted devices still on the previous revision or yet to
	// report.
	Pending int32 `json:"pending"`
}

// Configuration condition types, beyond Ready, Reconciling and Stalled.
const (
	// ConfigurationConditionRollingOut is True while a staged rollout has
	// devices to admit.
	ConfigurationConditionRollingOut = "RollingOut"
)

// ConfigurationDeviceCounts counts targeted Devices by state.
type ConfigurationDeviceCounts struct {
	// targeted Devices: matched by deviceSelector or named in
	// spec.configurations, not excluded.
	Targeted int32 `json:"targeted"`
	// applied the current revision.
	Applied int32 `json:"applied"`
	// pending: yet to report the current revision.
	Pending int32 `json:"pending"`
	// failed to apply some settings of the current revision.
	Failed int32 `json:"failed"`
	// overridden: every setting is taken from another configuration.
	Overridden int32 `json:"overridden"`
	// unsupported: of a platform the configuration is not for.
	Unsupported int32 `json:"unsupported"`
	// excluded by the Device's spec.configurations; not counted as
	// targeted.
	Excluded int32 `json:"excluded"`
}

// Configuration is content for devices: settings, raw platform payloads, and
// which devices get them.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cfg,categories=mdm
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="metadata.name must be at most 63 characters: a Configuration's revisions are labelled with its name"
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=`.spec.priority`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.revision`
// +kubebuilder:printcolumn:name="Targeted",type=integer,JSONPath=`.status.devices.targeted`
// +kubebuilder:printcolumn:name="Applied",type=integer,JSONPath=`.status.devices.applied`
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.devices.pending`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.devices.failed`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Configuration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ConfigurationSpec `json:"spec"`

	// The default makes a new object InProgress until its controller has
	// observed it.
	// +optional
	// +kubebuilder:default={"observedGeneration":-1}
	Status ConfigurationStatus `json:"status,omitempty"`
}

// ConfigurationList is a list of Configurations.
// +kubebuilder:object:root=true
type ConfigurationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Configuration `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Configuration{}, &ConfigurationList{})
}
