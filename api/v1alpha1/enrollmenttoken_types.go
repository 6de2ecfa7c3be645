package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ManagementMode is how much of the device the MDM controls.
// +kubebuilder:validation:Enum=DeviceOwner;ProfileOwner;Unspecified
type ManagementMode string

const (
	// ManagementModeDeviceOwner manages the whole, company-owned device.
	ManagementModeDeviceOwner ManagementMode = "DeviceOwner"
	// ManagementModeProfileOwner manages a work profile only.
	ManagementModeProfileOwner ManagementMode = "ProfileOwner"
	// ManagementModeUnspecified leaves the mode to the platform.
	ManagementModeUnspecified ManagementMode = "Unspecified"
)

// DefaultTokenTTL is how long a token lives when neither ttl nor expiresAt is set.
const DefaultTokenTTL = 24 * time.Hour

// EnrollmentTokenSpec is the desired state of an EnrollmentToken.
// +kubebuilder:validation:XValidation:rule="!(has(self.ttl) && has(self.expiresAt))",message="set either ttl or expiresAt, not both"
// +kubebuilder:validation:XValidation:rule="!has(self.provisioning) || self.platform in ['Android', 'AndroidAOSP']",message="provisioning (the Android QR payload) is only for the Android and AndroidAOSP platforms",fieldPath=".provisioning"
// +kubebuilder:validation:XValidation:rule="self.managementMode == 'Unspecified' || self.platform in ['Android', 'AndroidAOSP']",message="managementMode DeviceOwner or ProfileOwner is only for the Android and AndroidAOSP platforms; use Unspecified",fieldPath=".managementMode"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.revoked) || !oldSelf.revoked || (has(self.revoked) && self.revoked)",message="a revoked token cannot be reinstated; create a new EnrollmentToken",fieldPath=".revoked"
type EnrollmentTokenSpec struct {
	// platform of the devices this token enrolls. Immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="platform is immutable"
	Platform Platform `json:"platform"`

	// managementMode the enrolled devices are provisioned in.
	// Defaults to Unspecified.
	// +optional
	// +kubebuilder:default=Unspecified
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="managementMode is immutable"
	ManagementMode ManagementMode `json:"managementMode,omitempty"`

	// perpetual tokens enroll any number of devices until they expire.
	// Tokens are one-time by default: the first enrollment consumes them.
	// +optional
	Perpetual bool `json:"perpetual,omitempty"`

	// expiresAt is the instant the token stops enrolling devices.
	// Mutually exclusive with ttl.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// ttl is how long after creation the token stops enrolling devices, as a
	// Go duration such as "1h" or "720h". Mutually exclusive with expiresAt.
	// Defaults to 24h when neither is set.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="ttl must be a duration of at least 1s, such as 30m or 24h"
	TTL *metav1.Duration `json:"ttl,omitempty"`

	// owner is the user the enrolled devices are assigned to.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Owner string `json:"owner,omitempty"`

	// displayName is a human-readable name shown in listings.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	DisplayName string `json:"displayName,omitempty"`

	// tags classify the token for people and tooling.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	Tags []string `json:"tags,omitempty"`

	// dpcBuildTag selects the build of the device policy controller app that
	// Android devices install while provisioning.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DPCBuildTag string `json:"dpcBuildTag,omitempty"`

	// deviceTemplate is given to every Device this token enrolls.
	// +optional
	DeviceTemplate *DeviceTemplate `json:"deviceTemplate,omitempty"`

	// provisioning builds the Android device-owner QR code.
	// +optional
	Provisioning *AndroidProvisioning `json:"provisioning,omitempty"`

	// revoked tokens refuse enrollments and lose their secret value, but the
	// object stays for audit. A revoked token cannot be reinstated.
	// +optional
	Revoked bool `json:"revoked,omitempty"`
}

// DeviceTemplate is what an enrolled Device starts with.
type DeviceTemplate struct {
	// labels put on enrolled Devices.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Labels map[string]string `json:"labels,omitempty"`

	// attributes are the custom attributes enrolled Devices start with.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Attributes map[string]string `json:"attributes,omitempty"`

	// policies assigned to enrolled Devices, applied in priority order.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Policies []PolicyAssignment `json:"policies,omitempty"`
}

// PolicyAssignment assigns a configuration to a device with a priority.
type PolicyAssignment struct {
	// name of the configuration.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`

	// priority overrides the Configuration's spec.priority on the enrolled
	// devices: of several configurations that set one setting, the higher
	// wins.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Priority *int32 `json:"priority,omitempty"`
}

// WifiSecurityType is the security of the Wi-Fi network a device joins while
// provisioning.
// +kubebuilder:validation:Enum=None;WEP;WPA;EAP
type WifiSecurityType string

// AndroidProvisioning is the content of the Android device-owner QR code.
type AndroidProvisioning struct {
	// dpcComponentName is the device admin component, "package/.Receiver".
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_.]*/[A-Za-z0-9_.$]+$`
	DPCComponentName string `json:"dpcComponentName"`

	// dpcDownloadURL is the HTTPS location of the DPC package.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https'",message="dpcDownloadURL must be an https URL"
	DPCDownloadURL string `json:"dpcDownloadURL"`

	// dpcSignatureChecksum is the URL-safe base64 SHA-256 of the DPC's
	// signing certificate.
	// +required
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]{43}=?$`
	DPCSignatureChecksum string `json:"dpcSignatureChecksum"`

	// wifi is the network the device joins while provisioning.
	// +optional
	Wifi *ProvisioningWifi `json:"wifi,omitempty"`

	// skipEncryption skips device encryption during provisioning.
	// +optional
	SkipEncryption bool `json:"skipEncryption,omitempty"`

	// leaveAllSystemAppsEnabled keeps the system apps enabled.
	// +optional
	LeaveAllSystemAppsEnabled bool `json:"leaveAllSystemAppsEnabled,omitempty"`
}

// ProvisioningWifi is a Wi-Fi network for provisioning.
// +kubebuilder:validation:XValidation:rule="self.securityType == 'None' ? !has(self.passwordSecretRef) : has(self.passwordSecretRef)",message="passwordSecretRef is required for a secured network and must be omitted when securityType is None"
type ProvisioningWifi struct {
	// ssid of the network.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	SSID string `json:"ssid"`

	// securityType of the network.
	// +optional
	// +kubebuilder:default=WPA
	SecurityType WifiSecurityType `json:"securityType,omitempty"`

	// hidden is true for a network that does not broadcast its SSID.
	// +optional
	Hidden bool `json:"hidden,omitempty"`

	// passwordSecretRef points to the Wi-Fi password, so that it never
	// appears in the EnrollmentToken itself.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`
}

// EnrollmentTokenPhase is where a token is in its life.
// +kubebuilder:validation:Enum=Pending;Processing;Done;Deleted;Expired
type EnrollmentTokenPhase string

const (
	// TokenPending tokens can enroll devices.
	TokenPending EnrollmentTokenPhase = "Pending"
	// TokenProcessing tokens are enrolling a device right now.
	TokenProcessing EnrollmentTokenPhase = "Processing"
	// TokenDone one-time tokens have enrolled their device.
	TokenDone EnrollmentTokenPhase = "Done"
	// TokenDeleted tokens were revoked or are being deleted.
	TokenDeleted EnrollmentTokenPhase = "Deleted"
	// TokenExpired tokens passed their expiry.
	TokenExpired EnrollmentTokenPhase = "Expired"
)

// Terminal reports whether a token in this phase can never enroll again.
func (p EnrollmentTokenPhase) Terminal() bool {
	return p == TokenDone || p == TokenDeleted || p == TokenExpired
}

// Reasons of the EnrollmentToken's Ready condition.
const (
	// TokenReasonIssued means the secret value exists and enrolls devices.
	TokenReasonIssued = "Issued"
	// TokenReasonExpired means the token passed its expiry.
	TokenReasonExpired = "Expired"
	// TokenReasonRevoked means spec.revoked is true.
	TokenReasonRevoked = "Revoked"
	// TokenReasonConsumed means a one-time token enrolled its device.
	TokenReasonConsumed = "Consumed"
	// TokenReasonDeleting means the token is being deleted.
	TokenReasonDeleting = "Deleting"
	// TokenReasonWifiSecretUnavailable means the Wi-Fi password Secret or key
	// is missing, so the QR code cannot be built.
	TokenReasonWifiSecretUnavailable = "WifiSecretUnavailable"
	// TokenReasonProgressing means the controller is issuing the token.
	TokenReasonProgressing = "Progressing"
)

// Keys of the token's Secret.
const (
	// TokenSecretKey holds the token value.
	TokenSecretKey = "token"
	// TokenSecretQRJSONKey holds the provisioning payload as JSON.
	TokenSecretQRJSONKey = "qr.json"
	// TokenSecretQRPNGKey holds the provisioning payload as a QR code PNG.
	TokenSecretQRPNGKey = "qr.png"
	// TokenSecretCAKey holds the CA bundle that verifies the gateway.
	TokenSecretCAKey = "ca.crt"
)

// EnrollmentTokenStatus is the observed state of an EnrollmentToken.
type EnrollmentTokenStatus struct {
	// observedGeneration is the generation last reconciled to a settled state.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, and Reconciling or Stalled while true.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// phase of the token.
	// +optional
	Phase EnrollmentTokenPhase `json:"phase,omitempty"`

	// expiresAt is when the token expires, from spec.expiresAt or
	// creation time plus spec.ttl.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// secretRef names the Secret holding the token value, qr.json and qr.png.
	// Empty once the value is destroyed.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`

	// tokenHash is the hex SHA-256 of the token value; the gateway matches
	// presented tokens against it.
	// +optional
	TokenHash string `json:"tokenHash,omitempty"`

	// enrollmentHost is the gateway address devices enroll with.
	// +optional
	EnrollmentHost string `json:"enrollmentHost,omitempty"`

	// enrollmentCount is the number of Devices that enrolled with the
	// token and still exist. The controller counts them from the Devices
	// (at most one write per token every 10 seconds), so a fleet
	// enrolling at once never contends on the token; list them with
	// kubectl get devices --field-selector status.enrollmentToken=NAME.
	// +optional
	EnrollmentCount int32 `json:"enrollmentCount,omitempty"`

	// lastEnrollmentAt is when the newest of those Devices enrolled.
	// +optional
	LastEnrollmentAt *metav1.Time `json:"lastEnrollmentAt,omitempty"`

	// claimedAt is when a device claimed a one-time token (Processing). A
	// claim that no enrollment followed within ClaimTimeout is let go.
	// +optional
	ClaimedAt *metav1.Time `json:"claimedAt,omitempty"`
}

// ClaimTimeout is how long a one-time token stays Processing without an
// enrolled Device before it is Pending again: the gateway that claimed it
// stopped before it could finish or let go.
const ClaimTimeout = 2 * time.Minute

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// name of the object.
	// +required
	Name string `json:"name"`
}

// EnrollmentToken lets devices enroll. Its secret value lives only in the
// Secret named by status.secretRef.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=et,categories=mdm
// +kubebuilder:printcolumn:name="Platform",type=string,JSONPath=`.spec.platform`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Perpetual",type=boolean,JSONPath=`.spec.perpetual`
// +kubebuilder:printcolumn:name="Enrolled",type=integer,JSONPath=`.status.enrollmentCount`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Owner",type=string,JSONPath=`.spec.owner`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EnrollmentToken struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec EnrollmentTokenSpec `json:"spec"`

	// status is the observed state.
	// The default makes a new object InProgress for kstatus and Argo CD
	// until its controller has observed it: observedGeneration -1 never
	// equals metadata.generation.
	// +optional
	// +kubebuilder:default={"observedGeneration":-1}
	Status EnrollmentTokenStatus `json:"status,omitempty"`
}

// EnrollmentTokenList is a list of EnrollmentTokens.
// +kubebuilder:object:root=true
type EnrollmentTokenList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EnrollmentToken `json:"items"`
}

func init() {
	SchemeBuilder.Register(&EnrollmentToken{}, &EnrollmentTokenList{})
}
