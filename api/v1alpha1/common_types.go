package v1alpha1

import "time"

// Platform is the operating system family of a device. It decides which
// actions a device can run and how it enrolls.
// +kubebuilder:validation:Enum=Android;AndroidAOSP;IOS;ChromeOS;Windows;Linux
type Platform string

const (
	// PlatformAndroid is Android with Google Mobile Services.
	PlatformAndroid Platform = "Android"
	// PlatformAndroidAOSP is Android without Google Mobile Services.
	PlatformAndroidAOSP Platform = "AndroidAOSP"
	// PlatformIOS is iOS and iPadOS.
	PlatformIOS Platform = "IOS"
	// PlatformChromeOS is ChromeOS.
	PlatformChromeOS Platform = "ChromeOS"
	// PlatformWindows is Windows.
	PlatformWindows Platform = "Windows"
	// PlatformLinux is a Linux host running the reference agent.
	PlatformLinux Platform = "Linux"
)

// IsAndroid reports whether p is one of the Android platforms.
func (p Platform) IsAndroid() bool {
	return p == PlatformAndroid || p == PlatformAndroidAOSP
}

// Condition types shared by the kinds. Ready, Reconciling and Stalled follow
// kstatus so that kubectl wait, Argo CD and Flux read health without plugins.
const (
	// ConditionReady is True when the object has reached its desired state.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the controller is still working
	// towards the desired state. It is removed when it would be False.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the controller cannot make progress
	// without a change to the object or its environment. It is removed when
	// it would be False.
	ConditionStalled = "Stalled"
)

// AnnotationForceDelete on a Device lets its deletion release the device at
// once, without running spec.deletionPolicy on it.
const AnnotationForceDelete = "mdm.kubemdm.io/force-delete"

// AnnotationComplianceRequested on a Device asks for its compliance to be
// evaluated again, at or after the RFC 3339 time it holds, even if nothing
// changed: a SyncCompliance action sets it once the device re-sent its
// facts. The Device controller is the only writer of status.compliance; it
// moves lastEvaluated past this time.
const AnnotationComplianceRequested = "mdm.kubemdm.io/compliance-requested"

// AnnotationEnrollment on a Device the gateway created for an enrolling
// agent records that enrollment (token, key and time), signed by the device
// CA. The Device controller copies it into status.phase, enrolledAt,
// enrollmentToken and enrollmentKey in its first status write, so the
// enrollment itself writes the Device once, not twice. A record that does
// not verify, or that is older than the Device, is ignored.
const AnnotationEnrollment = "mdm.kubemdm.io/enrollment"

// ComplianceRequestSkew is how far ahead a compliance request may be dated,
// for clocks that disagree; the webhook refuses one further ahead.
const ComplianceRequestSkew = time.Minute

// LabelEnrollmentToken names the EnrollmentToken a Device enrolled with
// (on the Devices a token created) and the token a value Secret belongs to.
const LabelEnrollmentToken = "mdm.kubemdm.io/enrollment-token"

// Finalizer is the finalizer every kubemdm controller puts on the objects
// whose deletion needs work first.
const Finalizer = "mdm.kubemdm.io/finalizer"

// LabelManagedBy with ManagedByValue marks the objects kubemdm creates. The
// manager caches only the Secrets that carry it, so a cluster full of other
// Secrets costs it no memory.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "kubemdm"
)

// SecretKeyRef names a key in a Secret of the object's namespace.
type SecretKeyRef struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// key within the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}
