package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeviceState is the administrative state people set on a device.
// +kubebuilder:validation:Enum=Active;Disabled
type DeviceState string

const (
	// DeviceStateActive devices are usable.
	DeviceStateActive DeviceState = "Active"
	// DeviceStateDisabled devices are lost or stolen: still managed, unusable.
	DeviceStateDisabled DeviceState = "Disabled"
)

// DeletionPolicy is what deleting a Device does to the real device.
// +kubebuilder:validation:Enum=Retire;Unenroll;Orphan
type DeletionPolicy string

const (
	// DeletionPolicyRetire removes company data and management.
	DeletionPolicyRetire DeletionPolicy = "Retire"
	// DeletionPolicyUnenroll runs the unenroll flow.
	DeletionPolicyUnenroll DeletionPolicy = "Unenroll"
	// DeletionPolicyOrphan leaves the device as it is.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// DeviceSpec is the desired state of a Device. People and Git own it;
// controllers never write it, except the state-changing DeviceActions, which
// apply their single field without force.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.serialNumber) || (has(self.serialNumber) && self.serialNumber == oldSelf.serialNumber)",message="serialNumber cannot be changed or removed once set",fieldPath=".serialNumber"
// +kubebuilder:validation:XValidation:rule="!has(self.kiosk) || !self.kiosk.enabled || self.platform in ['Android', 'AndroidAOSP']",message="kiosk mode is only available on the Android and AndroidAOSP platforms",fieldPath=".kiosk"
// +kubebuilder:validation:XValidation:rule="!has(self.lostMode) || !self.lostMode.enabled || self.platform in ['IOS', 'Android', 'AndroidAOSP']",message="lost mode is only available on the IOS, Android and AndroidAOSP platforms",fieldPath=".lostMode"
type DeviceSpec struct {
	// platform of the device. Immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="platform is immutable"
	Platform Platform `json:"platform"`

	// serialNumber of the hardware. A Device created with a serial number
	// before enrollment is claimed by the agent that enrolls with the same
	// serial. It cannot change once set.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][-A-Za-z0-9_.:/]*$`
	SerialNumber string `json:"serialNumber,omitempty"`

	// owner is the user the device is assigned to. Changing it starts a
	// reassignment, reported in status.reassignment.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Owner string `json:"owner,omitempty"`

	// attributes are custom attributes. Replace, patch and remove them with
	// kubectl patch or server-side apply.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Attributes map[string]string `json:"attributes,omitempty"`

	// state Disabled makes a lost or stolen device unusable while keeping it
	// managed; empty means Active. It has no schema default, which would
	// make whoever creates the Device (Git, the gateway) the owner of the
	// field and refuse the Disable and Reenable actions.
	// +optional
	State DeviceState `json:"state,omitempty"`

	// kiosk locks an Android device to one app.
	// +optional
	Kiosk *KioskSpec `json:"kiosk,omitempty"`

	// lostMode locks an iOS or Android device and shows a message.
	// +optional
	LostMode *LostModeSpec `json:"lostMode,omitempty"`

	// configurations assigned to the device by name, beside those whose
	// deviceSelector matches it. Set excluded to remove one (assigned or
	// selected) without losing the assignment.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Configurations []ConfigurationAssignment `json:"configurations,omitempty"`

	// deletionPolicy is what deleting this Device does to the real device.
	// Defaults to Retire, so that removing a Device from Git retires it.
	// +optional
	// +kubebuilder:default=Retire
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// KioskSpec is the desired kiosk mode.
// +kubebuilder:validation:XValidation:rule="!self.enabled || has(self.app)",message="kiosk.app is required when kiosk mode is enabled"
type KioskSpec struct {
	// enabled turns kiosk mode on.
	// +required
	Enabled bool `json:"enabled"`

	// app is the package name the device is locked to.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$`
	App string `json:"app,omitempty"`
}

// LostModeSpec is the desired lost mode.
// +kubebuilder:validation:XValidation:rule="!self.enabled || has(self.message) || has(self.phoneNumber)",message="lost mode needs a message or a phoneNumber to show on the locked device"
type LostModeSpec struct {
	// enabled turns lost mode on.
	// +required
	Enabled bool `json:"enabled"`

	// message shown on the locked screen.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Message string `json:"message,omitempty"`

	// phoneNumber shown on the locked screen.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^\+?[0-9 ()-]{3,31}$`
	PhoneNumber string `json:"phoneNumber,omitempty"`

	// footnote shown under the message.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Footnote string `json:"footnote,omitempty"`
}

// ConfigurationAssignment assigns a configuration to a device.
type ConfigurationAssignment struct {
	// name of the configuration.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`

	// priority overrides the Configuration's spec.priority on this device:
	// of several configurations that set one setting, the higher wins.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Priority *int32 `json:"priority,omitempty"`

	// excluded uninstalls the configuration from this device while keeping
	// the assignment.
	// +optional
	Excluded bool `json:"excluded,omitempty"`

	// minOSVersion is a compliance rule the configuration brings: the device
	// is NonCompliant while its reported OS version is older, compared
	// numerically part by part ("17.4" < "17.10").
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)*$`
	MinOSVersion string `json:"minOSVersion,omitempty"`
}

// DevicePhase is where a device is in its life.
// +kubebuilder:validation:Enum=Registered;Enrolled;Disabled;WipePending;Wiped;Retired;Unenrolled;Deprovisioned
type DevicePhase string

const (
	// DeviceRegistered devices exist but have not enrolled.
	DeviceRegistered DevicePhase = "Registered"
	// DeviceEnrolled devices are managed.
	DeviceEnrolled DevicePhase = "Enrolled"
	// DeviceDisabled devices are managed but unusable.
	DeviceDisabled DevicePhase = "Disabled"
	// DeviceWipePending devices have a wipe on the way.
	DeviceWipePending DevicePhase = "WipePending"
	// DeviceWiped devices were wiped.
	DeviceWiped DevicePhase = "Wiped"
	// DeviceRetired devices had company data and management removed.
	DeviceRetired DevicePhase = "Retired"
	// DeviceUnenrolled devices ran the unenroll flow.
	DeviceUnenrolled DevicePhase = "Unenrolled"
	// DeviceDeprovisioned devices were taken out of management.
	DeviceDeprovisioned DevicePhase = "Deprovisioned"
)

// Managed reports whether a device in this phase still talks to the gateway.
func (p DevicePhase) Managed() bool {
	switch p {
	case DeviceWiped, DeviceRetired, DeviceUnenrolled, DeviceDeprovisioned:
		return false
	}
	return true
}

// UnenrollmentPhase follows the source unenroll API, in its lower-case values.
// +kubebuilder:validation:Enum=pending;success;failed;none
type UnenrollmentPhase string

const (
	// UnenrollmentPending means an unenroll was requested.
	UnenrollmentPending UnenrollmentPhase = "pending"
	// UnenrollmentSuccess means the device confirmed it unenrolled.
	UnenrollmentSuccess UnenrollmentPhase = "success"
	// UnenrollmentFailed means a step of the unenroll failed.
	UnenrollmentFailed UnenrollmentPhase = "failed"
	// UnenrollmentNone means no unenroll was requested.
	UnenrollmentNone UnenrollmentPhase = "none"
)

// UnenrollmentStatus is the source API's unenrollmentStatus.
type UnenrollmentStatus struct {
	// phase of the unenrollment: pending, success, failed or none. People
	// may set it through the status subresource; the dates are then stamped
	// by the server.
	// +required
	Phase UnenrollmentPhase `json:"phase"`

	// requestDate is when the unenroll was requested.
	// +optional
	// +nullable
	RequestDate *metav1.Time `json:"requestDate"`

	// executionDate is when the unenroll finished, successfully or not.
	// +optional
	// +nullable
	ExecutionDate *metav1.Time `json:"executionDate"`
}

// ReassignmentPhase follows the source API's asynchronous assignment.
// +kubebuilder:validation:Enum=Initiated;Succeeded;Failed
type ReassignmentPhase string

const (
	// ReassignmentInitiated means the new owner was sent to the device.
	ReassignmentInitiated ReassignmentPhase = "Initiated"
	// ReassignmentSucceeded means the device accepted the new owner.
	ReassignmentSucceeded ReassignmentPhase = "Succeeded"
	// ReassignmentFailed means the device refused the new owner.
	ReassignmentFailed ReassignmentPhase = "Failed"
)

// ReassignmentStatus is the last change of owner.
type ReassignmentStatus struct {
	// phase of the reassignment.
	// +required
	Phase ReassignmentPhase `json:"phase"`

	// owner the device is being assigned to.
	// +optional
	Owner string `json:"owner,omitempty"`

	// time of the last phase change.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`

	// message from the device when the reassignment failed.
	// +optional
	Message string `json:"message,omitempty"`
}

// DeviceInfo is what the agent reports about the hardware and software.
type DeviceInfo struct {
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Model string `json:"model,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Manufacturer string `json:"manufacturer,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=256
	OSVersion string `json:"osVersion,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=256
	AgentVersion string `json:"agentVersion,omitempty"`
	// capacity is the storage size.
	// +optional
	Capacity *resource.Quantity `json:"capacity,omitempty"`
}

// ComplianceState is the result of the compliance rules.
// +kubebuilder:validation:Enum=Compliant;NonCompliant;Unknown
type ComplianceState string

const (
	// ComplianceCompliant devices pass every rule.
	ComplianceCompliant ComplianceState = "Compliant"
	// ComplianceNonCompliant devices fail at least one rule.
	ComplianceNonCompliant ComplianceState = "NonCompliant"
	// ComplianceUnknown devices were not evaluated yet.
	ComplianceUnknown ComplianceState = "Unknown"
)

// MaxComplianceReasons caps status.compliance.reasons; it must equal the
// list's MaxItems, or a device with many failing configurations could never
// have its status written again.
const MaxComplianceReasons = 32

// ComplianceStatus is the last compliance evaluation.
type ComplianceStatus struct {
	// +required
	State ComplianceState `json:"state"`

	// reasons the device is not compliant, at most MaxComplianceReasons; the
	// last one counts those left out.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Reasons []string `json:"reasons,omitempty"`

	// +optional
	LastEvaluated *metav1.Time `json:"lastEvaluated,omitempty"`
}

// ConfigurationState is how far a configuration got on the device.
// +kubebuilder:validation:Enum=Pending;Applied;Failed;Excluded;Overridden;Unsupported
type ConfigurationState string

const (
	// ConfigurationPending: the device has yet to report the revision the
	// configuration is at, or the Configuration does not exist (yet).
	ConfigurationPending ConfigurationState = "Pending"
	// ConfigurationApplied: the device applied every setting the
	// configuration won, at the revision the row names.
	ConfigurationApplied ConfigurationState = "Applied"
	// ConfigurationFailed: the device could not apply some of its settings;
	// settings[] says which.
	ConfigurationFailed ConfigurationState = "Failed"
	// ConfigurationExcluded: the Device's assignment excludes it, so the
	// device removed it.
	ConfigurationExcluded ConfigurationState = "Excluded"
	// ConfigurationOverridden: every setting it sets was won by another
	// configuration; settings[] names the winners.
	ConfigurationOverridden ConfigurationState = "Overridden"
	// ConfigurationUnsupported: the configuration is not for this device's
	// platform.
	ConfigurationUnsupported ConfigurationState = "Unsupported"
)

// MaxSettingStatuses caps a configuration row's settings[]; it must equal
// the list's MaxItems. The last entry counts those left out.
const MaxSettingStatuses = 16

// SettingReason is why a setting is not applied as its configuration says.
// +kubebuilder:validation:Enum=Overridden;Failed;Unsupported
type SettingReason string

const (
	// SettingOverridden: another configuration won the setting.
	SettingOverridden SettingReason = "Overridden"
	// SettingFailed: the device could not apply it.
	SettingFailed SettingReason = "Failed"
	// SettingUnsupported: the device cannot apply this kind of setting.
	SettingUnsupported SettingReason = "Unsupported"
)

// SettingStatus is one setting of a configuration that is not applied as
// the configuration says.
type SettingStatus struct {
	// path of the setting, such as passcode.minLength or files[/etc/motd].
	// +required
	// +kubebuilder:validation:MaxLength=1100
	Path string `json:"path"`
	// +required
	Reason SettingReason `json:"reason"`
	// message names the winning configuration or the device's error. It
	// never holds a Secret's value.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// current is the value the device holds instead, for a setting that
	// carries no secret (passcode, restrictions, systemUpdate).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Current string `json:"current,omitempty"`
}

// Limits of what a device reports. The status schema holds the same ones,
// and the gateway refuses a report over them with invalid_argument: a fact
// the apiserver would refuse must never reach a status write, or it would
// fail every later one.
const (
	MaxReportedName    = 253
	MaxReportedMessage = 1024
	MaxReportedField   = 256
)

// KioskStatus is kiosk mode as the device reported it. It is the device's
// observation, so it carries none of the rules of the desired KioskSpec.
type KioskStatus struct {
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=256
	App string `json:"app,omitempty"`
}

// LostModeStatus is lost mode as the device reported it.
type LostModeStatus struct {
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=256
	PhoneNumber string `json:"phoneNumber,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Footnote string `json:"footnote,omitempty"`
}

// DeviceConfigurationStatus is one configuration targeting the device: the
// revision the device reports applied and how far it got.
type DeviceConfigurationStatus struct {
	// +required
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// revision the device reports applied; empty until it applied one.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Revision string `json:"revision,omitempty"`
	// appliedTime is when the device last wrote the configuration: applied
	// the revision, or reinstalled it (ReinstallConfiguration).
	// +optional
	AppliedTime *metav1.Time `json:"appliedTime,omitempty"`
	// +required
	State ConfigurationState `json:"state"`
	// message says why the configuration is not Applied.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// settings not applied as this configuration says, at most
	// MaxSettingStatuses.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Settings []SettingStatus `json:"settings,omitempty"`
}

// CertificateInfo describes a certificate on the device.
type CertificateInfo struct {
	// +required
	// +kubebuilder:validation:MaxLength=1024
	Subject string `json:"subject"`
	// +required
	// +kubebuilder:validation:MaxLength=256
	SerialNumber string `json:"serialNumber"`
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`
	// source is "identity" for the device's own certificate, or the name of
	// the configuration that installed it.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Source string `json:"source,omitempty"`
}

// Device condition types, beyond Ready, Reconciling and Stalled.
const (
	// DeviceConditionEnrolled is True once the agent enrolled.
	DeviceConditionEnrolled = "Enrolled"
	// DeviceConditionConnected is True while the agent holds a connection.
	DeviceConditionConnected = "Connected"
	// DeviceConditionCompliant mirrors status.compliance.
	DeviceConditionCompliant = "Compliant"
	// DeviceConditionConfigApplied is True when the device applied the
	// latest desired configuration.
	DeviceConditionConfigApplied = "ConfigApplied"
)

// DeviceStatus is the observed state of a Device.
type DeviceStatus struct {
	// observedGeneration is the generation last converged.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Enrolled, Connected, Compliant, ConfigApplied, and
	// Reconciling or Stalled while true.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// phase of the device.
	// +optional
	Phase DevicePhase `json:"phase,omitempty"`

	// enrolledAt is when the agent enrolled.
	// +optional
	EnrolledAt *metav1.Time `json:"enrolledAt,omitempty"`

	// enrollmentToken is the name of the token the device enrolled with.
	// +optional
	EnrollmentToken string `json:"enrollmentToken,omitempty"`

	// enrollmentKey is the SHA-256 digest of the public key the agent
	// enrolled with, "sha256:" and hex. An enrollment retried with the same
	// key (its answer was lost) gets this Device again.
	// +optional
	// +kubebuilder:validation:MaxLength=71
	EnrollmentKey string `json:"enrollmentKey,omitempty"`

	// lastSeen is when the agent was last heard from. While Connected is
	// True the agent holds its stream and is seen now; lastSeen is then
	// when it was shown connected, and is written again when the stream
	// closes. A stream reopened through the replica the Device still
	// names (that replica restarted) keeps it. An agent that only polls
	// has it written at most once per status flush interval.
	// +optional
	LastSeen *metav1.Time `json:"lastSeen,omitempty"`

	// connection names the gateway replica holding the agent's stream while
	// Connected is True. Another replica reads it to tell a device that
	// moved from one whose replica stopped: the devices of a replica whose
	// Lease lapsed are marked disconnected.
	// +optional
	Connection *DeviceConnection `json:"connection,omitempty"`

	// deviceInfo as the agent reported it.
	// +optional
	DeviceInfo *DeviceInfo `json:"deviceInfo,omitempty"`

	// security is the device's protection as the agent reported it;
	// absent when the agent does not report it.
	// +optional
	Security *DeviceSecurity `json:"security,omitempty"`

	// unenrollment follows the source unenroll API.
	// +optional
	Unenrollment *UnenrollmentStatus `json:"unenrollment,omitempty"`

	// reassignment is the last change of owner.
	// +optional
	Reassignment *ReassignmentStatus `json:"reassignment,omitempty"`

	// kiosk as the device reported it.
	// +optional
	Kiosk *KioskStatus `json:"kiosk,omitempty"`

	// lostMode as the device reported it.
	// +optional
	LostMode *LostModeStatus `json:"lostMode,omitempty"`

	// compliance is the last evaluation of the compliance rules.
	// +optional
	Compliance *ComplianceStatus `json:"compliance,omitempty"`

	// configurations targeting the device, by selector or assignment, as
	// of the device's last report.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Configurations []DeviceConfigurationStatus `json:"configurations,omitempty"`

	// appliedConfigGeneration is the generation of the desired configuration
	// the agent last applied and reported; it equals metadata.generation once
	// the device converged.
	// +optional
	AppliedConfigGeneration int64 `json:"appliedConfigGeneration,omitempty"`

	// certificates on the device: its identity and those installed by
	// configurations.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Certificates []CertificateInfo `json:"certificates,omitempty"`
}

// DeviceSecurity is what compliance rules check on the device.
type DeviceSecurity struct {
	// passcodeSet: a screen lock is set.
	// +optional
	PasscodeSet bool `json:"passcodeSet,omitempty"`
	// encrypted: the device's storage is encrypted.
	// +optional
	Encrypted bool `json:"encrypted,omitempty"`
}

// DeviceConnection is the gateway replica a connected device streams to.
type DeviceConnection struct {
	// gateway is the name of the replica; its Lease is
	// kubemdm-gateway-<gateway> in the manager's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Gateway string `json:"gateway"`
}

// Device is a phone, tablet, Chromebook or computer under management.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dev,categories=mdm
// +kubebuilder:selectablefield:JSONPath=`.spec.owner`
// +kubebuilder:selectablefield:JSONPath=`.spec.platform`
// +kubebuilder:selectablefield:JSONPath=`.status.phase`
// +kubebuilder:selectablefield:JSONPath=`.spec.serialNumber`
// +kubebuilder:selectablefield:JSONPath=`.status.enrollmentToken`
// +kubebuilder:printcolumn:name="Platform",type=string,JSONPath=`.spec.platform`
// +kubebuilder:printcolumn:name="Owner",type=string,JSONPath=`.spec.owner`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Connected",type=string,JSONPath=`.status.conditions[?(@.type=="Connected")].status`
// +kubebuilder:printcolumn:name="Config",type=string,JSONPath=`.status.conditions[?(@.type=="ConfigApplied")].status`
// +kubebuilder:printcolumn:name="Compliant",type=string,JSONPath=`.status.compliance.state`
// +kubebuilder:printcolumn:name="Last Seen",type=date,JSONPath=`.status.lastSeen`
// +kubebuilder:printcolumn:name="Serial",type=string,JSONPath=`.spec.serialNumber`,priority=1
// +kubebuilder:printcolumn:name="OS",type=string,JSONPath=`.status.deviceInfo.osVersion`,priority=1
// +kubebuilder:printcolumn:name="Gateway",type=string,JSONPath=`.status.connection.gateway`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Device struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec DeviceSpec `json:"spec"`

	// status is the observed state.
	// The default makes a new object InProgress for kstatus and Argo CD
	// until its controller has observed it: observedGeneration -1 never
	// equals metadata.generation.
	// +optional
	// +kubebuilder:default={"observedGeneration":-1}
	Status DeviceStatus `json:"status,omitempty"`
}

// DeviceList is a list of Devices.
// +kubebuilder:object:root=true
type DeviceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Device `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Device{}, &DeviceList{})
}
