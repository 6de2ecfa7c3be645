package v1alpha1

import (
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ActionType is a command sent to devices.
// +kubebuilder:validation:Enum=Lock;Unlock;Wipe;Retire;Unenroll;Restart;Sync;SendMessage;LogoutUser;UpdateOS;ReinstallConfiguration;SyncCompliance;EnterKiosk;ExitKiosk;EnableLostMode;DisableLostMode;Relinquish;CancelRelinquish;Disable;Reenable;Deprovision
type ActionType string

// The action types. Their eligibility per platform and device phase is the
// table in controllers/eligibility.
const (
	ActionLock                   ActionType = "Lock"
	ActionUnlock                 ActionType = "Unlock"
	ActionWipe                   ActionType = "Wipe"
	ActionRetire                 ActionType = "Retire"
	ActionUnenroll               ActionType = "Unenroll"
	ActionRestart                ActionType = "Restart"
	ActionSync                   ActionType = "Sync"
	ActionSendMessage            ActionType = "SendMessage"
	ActionLogoutUser             ActionType = "LogoutUser"
	ActionUpdateOS               ActionType = "UpdateOS"
	ActionReinstallConfiguration ActionType = "ReinstallConfiguration"
	ActionSyncCompliance         ActionType = "SyncCompliance"
	ActionEnterKiosk             ActionType = "EnterKiosk"
	ActionExitKiosk              ActionType = "ExitKiosk"
	ActionEnableLostMode         ActionType = "EnableLostMode"
	ActionDisableLostMode        ActionType = "DisableLostMode"
	ActionRelinquish             ActionType = "Relinquish"
	ActionCancelRelinquish       ActionType = "CancelRelinquish"
	ActionDisable                ActionType = "Disable"
	ActionReenable               ActionType = "Reenable"
	ActionDeprovision            ActionType = "Deprovision"
)

// Destructive reports whether the action removes data or management, and so
// needs an RBAC verb of its own name on devices.
func (a ActionType) Destructive() bool {
	switch a {
	case ActionWipe, ActionRetire, ActionDeprovision, ActionUnenroll:
		return true
	}
	return false
}

// NeedsConfirm reports whether spec.confirm must repeat the action name.
func (a ActionType) NeedsConfirm() bool {
	return a == ActionWipe || a == ActionRetire || a == ActionDeprovision
}

// DeprovisionReason is why a ChromeOS device leaves management, as the
// source API requires.
// +kubebuilder:validation:Enum=SameModelReplacement;DifferentModelReplacement;RetiringDevice;UpgradeTransfer
type DeprovisionReason string

// MaxActionDevices is the most devices one DeviceAction may name.
const MaxActionDevices = 50

// MaxSelectorMatches is the most devices a selector may resolve to: one status
// row per device must stay well under the apiserver's object size limit.
const MaxSelectorMatches = 1000

// DeviceActionSpec is the command to run. It is immutable but for cancel,
// which may only be turned on.
// +kubebuilder:validation:XValidation:rule="self.action == oldSelf.action && has(self.devices) == has(oldSelf.devices) && has(self.selector) == has(oldSelf.selector) && has(self.parameters) == has(oldSelf.parameters) && (has(self.dryRun) && self.dryRun) == (has(oldSelf.dryRun) && oldSelf.dryRun) && (has(self.deadline) ? duration(self.deadline) : duration('24h')) == (has(oldSelf.deadline) ? duration(oldSelf.deadline) : duration('24h')) && has(self.ttlSecondsAfterFinished) == has(oldSelf.ttlSecondsAfterFinished) && (!has(self.ttlSecondsAfterFinished) || self.ttlSecondsAfterFinished == oldSelf.ttlSecondsAfterFinished) && (has(self.confirm) && size(self.confirm) > 0) == (has(oldSelf.confirm) && size(oldSelf.confirm) > 0) && (!has(self.confirm) || size(self.confirm) == 0 || self.confirm == oldSelf.confirm)",message="spec is immutable except cancel; create a new DeviceAction instead"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",message="cancel cannot be undone; create a new DeviceAction to run the command again",fieldPath=".cancel"
// +kubebuilder:validation:XValidation:rule="has(self.devices) != has(self.selector)",message="set exactly one of devices or selector"
// +kubebuilder:validation:XValidation:rule="self.action != 'Deprovision' || (has(self.parameters) && has(self.parameters.deprovisionReason))",message="parameters.deprovisionReason is required for Deprovision",fieldPath=".parameters"
// +kubebuilder:validation:XValidation:rule="self.action == 'Deprovision' || !has(self.parameters) || !has(self.parameters.deprovisionReason)",message="parameters.deprovisionReason is only allowed for Deprovision",fieldPath=".parameters"
// +kubebuilder:validation:XValidation:rule="!(self.action in ['Wipe', 'Retire', 'Deprovision']) || (has(self.confirm) && self.confirm == self.action)",messageExpression="'confirm must be \"' + self.action + '\" to run this destructive action'",fieldPath=".confirm"
// +kubebuilder:validation:XValidation:rule="self.action != 'SendMessage' || (has(self.parameters) && has(self.parameters.message))",message="parameters.message is required for SendMessage",fieldPath=".parameters"
// +kubebuilder:validation:XValidation:rule="self.action != 'EnableLostMode' || (has(self.parameters) && has(self.parameters.lostMode))",message="parameters.lostMode is required for EnableLostMode",fieldPath=".parameters"
// +kubebuilder:validation:XValidation:rule="self.action != 'EnterKiosk' || (has(self.parameters) && has(self.parameters.kioskApp))",message="parameters.kioskApp is required for EnterKiosk",fieldPath=".parameters"
// +kubebuilder:validation:XValidation:rule="self.action != 'ReinstallConfiguration' || (has(self.parameters) && has(self.parameters.configurations))",message="parameters.configurations is required for ReinstallConfiguration",fieldPath=".parameters"
type DeviceActionSpec struct {
	// action to run.
	// +required
	Action ActionType `json:"action"`

	// devices are the names of the target Devices in this namespace, at
	// most 50. Exactly one of devices or selector is set.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.devices is immutable; create a new DeviceAction instead"
	Devices []string `json:"devices,omitempty"`

	// selector picks the target Devices by label, resolved once when the
	// action starts. More than 1000 matches fail the action.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.selector is immutable; create a new DeviceAction instead"
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// parameters of the actions that take them.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.parameters is immutable; create a new DeviceAction instead"
	Parameters *ActionParameters `json:"parameters,omitempty"`

	// dryRun computes eligibility per device and sends nothing, the
	// checkViability of the source API.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`

	// deadline is how long a command may wait for an offline device before
	// it is Expired. Defaults to 24h.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('2160h')",message="deadline must be a duration between 1s and 2160h (90 days), such as 30m or 24h"
	Deadline *metav1.Duration `json:"deadline,omitempty"`

	// ttlSecondsAfterFinished deletes the action this long after it finished.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`

	// cancel stops the action: commands not yet delivered are Canceled at
	// once, devices that hold a delivered command are told to drop it if
	// they have not started it, and what queueing did to a device (a
	// pending wipe or unenrollment, a state change) is undone. The action
	// then ends Canceled and keeps its record. It is the one field that
	// may change after creation, and only from false to true.
	// +optional
	Cancel bool `json:"cancel,omitempty"`

	// confirm must equal the action name for Wipe, Retire and Deprovision,
	// so that a destructive action is never created by accident.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Confirm string `json:"confirm,omitempty"`
}

// ActionParameters are the typed parameters of the actions that take them.
type ActionParameters struct {
	// message for SendMessage.
	// +optional
	Message *MessageParameters `json:"message,omitempty"`

	// lostMode for EnableLostMode.
	// +optional
	LostMode *LostModeParameters `json:"lostMode,omitempty"`

	// kioskApp for EnterKiosk: the package name to lock the device to.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$`
	KioskApp string `json:"kioskApp,omitempty"`

	// osVersion for UpdateOS; empty means the latest available.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	OSVersion string `json:"osVersion,omitempty"`

	// configurations for ReinstallConfiguration.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	Configurations []string `json:"configurations,omitempty"`

	// deprovisionReason for Deprovision, required there and refused elsewhere.
	// +optional
	DeprovisionReason DeprovisionReason `json:"deprovisionReason,omitempty"`
}

// MessageParameters is a message pushed to the device's screen.
type MessageParameters struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Title string `json:"title"`
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Body string `json:"body"`
}

// LostModeParameters is the text lost mode shows.
// +kubebuilder:validation:XValidation:rule="has(self.message) || has(self.phoneNumber)",message="lost mode needs a message or a phoneNumber to show on the locked device"
type LostModeParameters struct {
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Message string `json:"message,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^\+?[0-9 ()-]{3,31}$`
	PhoneNumber string `json:"phoneNumber,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Footnote string `json:"footnote,omitempty"`
}

// ActionPhase is where a DeviceAction is.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;PartiallySucceeded;Failed;Expired;Canceled
type ActionPhase string

const (
	ActionPending            ActionPhase = "Pending"
	ActionRunning            ActionPhase = "Running"
	ActionSucceeded          ActionPhase = "Succeeded"
	ActionPartiallySucceeded ActionPhase = "PartiallySucceeded"
	ActionFailed             ActionPhase = "Failed"
	ActionExpired            ActionPhase = "Expired"
	// ActionCanceled is an action stopped by spec.cancel or by its deletion.
	ActionCanceled ActionPhase = "Canceled"
)

// Deadline is when commands not yet delivered expire: the action's start
// (its creation until it started) plus spec.deadline, 24h by default.
func (a *DeviceAction) Deadline() time.Time {
	start := a.CreationTimestamp.Time
	if a.Status.StartTime != nil {
		start = a.Status.StartTime.Time
	}
	d := 24 * time.Hour
	if a.Spec.Deadline != nil {
		d = a.Spec.Deadline.Duration
	}
	return start.Add(d)
}

// Finished reports whether the action is over.
func (p ActionPhase) Finished() bool {
	switch p {
	case ActionSucceeded, ActionPartiallySucceeded, ActionFailed, ActionExpired, ActionCanceled:
		return true
	}
	return false
}

// DeviceCommandPhase is where the command for one device is.
// +kubebuilder:validation:Enum=Ineligible;Pending;Queued;Delivered;Succeeded;Failed;Expired;Canceled
type DeviceCommandPhase string

const (
	CommandIneligible DeviceCommandPhase = "Ineligible"
	// CommandPending is a row recorded before the action changed the
	// device for it (a pending wipe or unenrollment, a spec field); it is
	// Queued once that change is made, and never delivered before.
	CommandPending   DeviceCommandPhase = "Pending"
	CommandQueued    DeviceCommandPhase = "Queued"
	CommandDelivered DeviceCommandPhase = "Delivered"
	CommandSucceeded DeviceCommandPhase = "Succeeded"
	CommandFailed    DeviceCommandPhase = "Failed"
	CommandExpired   DeviceCommandPhase = "Expired"
	CommandCanceled  DeviceCommandPhase = "Canceled"
)

// Open reports whether the command is still to deliver or to complete.
func (p DeviceCommandPhase) Open() bool {
	return p == CommandQueued || p == CommandDelivered
}

// Unfinished reports whether the row has yet to reach a result: open, or
// still Pending.
func (p DeviceCommandPhase) Unfinished() bool {
	return p == CommandPending || p.Open()
}

// CompareQueueOrder orders DeviceActions the way a device receives their
// commands: by creation, to the second, then by when the controller queued
// them, to the microsecond, then by name.
func CompareQueueOrder(a, b *DeviceAction) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	var qa, qb time.Time
	if a.Status.QueuedAt != nil {
		qa = a.Status.QueuedAt.Time
	}
	if b.Status.QueuedAt != nil {
		qb = b.Status.QueuedAt.Time
	}
	if c := qa.Compare(qb); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// Result codes of a device row, the google.rpc.Code numbers of the source API.
const (
	CodeOK                 int32 = 0
	CodeCanceled           int32 = 1
	CodeUnknown            int32 = 2
	CodeDeadlineExceeded   int32 = 4
	CodeNotFound           int32 = 5
	CodeFailedPrecondition int32 = 9
	CodeAborted            int32 = 10
	CodeUnimplemented      int32 = 12
)

// DeviceResult is the outcome of the action on one device.
type DeviceResult struct {
	// name of the Device.
	// +required
	Name string `json:"name"`

	// deviceUID is the UID of the Device the command was queued for. A
	// Device deleted and created again under the same name is another
	// device: it neither receives nor completes this command.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	DeviceUID types.UID `json:"deviceUID,omitempty"`

	// +required
	Phase DeviceCommandPhase `json:"phase"`

	// code is a google.rpc.Code number: 0 OK, 1 Cancelled, 2 Unknown, 4 DeadlineExceeded,
	// 5 NotFound, 9 FailedPrecondition, 10 Aborted, 12 Unimplemented. An
	// absent code is 0.
	// +optional
	Code int32 `json:"code,omitempty"`

	// +optional
	Message string `json:"message,omitempty"`

	// +optional
	QueuedAt *metav1.Time `json:"queuedAt,omitempty"`
	// +optional
	DeliveredAt *metav1.Time `json:"deliveredAt,omitempty"`
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`

	// settled is set once the row's outcome has done its part on the
	// device (the phase it moved, the change it undid), so that it is done
	// exactly once.
	// +optional
	Settled bool `json:"settled,omitempty"`
}

// ActionSummary counts the devices per phase.
type ActionSummary struct {
	Total      int32 `json:"total"`
	Ineligible int32 `json:"ineligible,omitempty"`
	Pending    int32 `json:"pending,omitempty"`
	Queued     int32 `json:"queued,omitempty"`
	Delivered  int32 `json:"delivered,omitempty"`
	Succeeded  int32 `json:"succeeded,omitempty"`
	Failed     int32 `json:"failed,omitempty"`
	Expired    int32 `json:"expired,omitempty"`
	Canceled   int32 `json:"canceled,omitempty"`
}

// DeviceActionStatus is the progress of a DeviceAction. The devices list is
// the command queue: nothing else holds it.
type DeviceActionStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, and Reconciling or Stalled while true.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// +optional
	Phase ActionPhase `json:"phase,omitempty"`

	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// queuedAt is when the controller first took up the action to queue
	// its commands, to the microsecond; an action that waited for its
	// devices to settle keeps the time it began waiting. After
	// metadata.creationTimestamp, which counts whole seconds, it orders the
	// commands of one device: actions created in the same second are
	// delivered in the order the controller took them up.
	// +optional
	QueuedAt *metav1.MicroTime `json:"queuedAt,omitempty"`

	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// summary counts the devices per phase.
	// +optional
	Summary *ActionSummary `json:"summary,omitempty"`

	// devices holds one row per target device, each named once. The list
	// is atomic rather than a map keyed by name: the apiserver would
	// otherwise track every row's fields in managedFields (larger than
	// the rows themselves) and pay for it on each write (ADR 12).
	// +optional
	// +listType=atomic
	Devices []DeviceResult `json:"devices,omitempty"`
}

// DeviceAction runs one command on a set of devices and records a result
// per device.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=da,categories=mdm
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.action`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.summary.total`
// +kubebuilder:printcolumn:name="Succeeded",type=integer,JSONPath=`.status.summary.succeeded`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.summary.failed`
// +kubebuilder:printcolumn:name="Ineligible",type=integer,JSONPath=`.status.summary.ineligible`
// +kubebuilder:printcolumn:name="Expired",type=integer,JSONPath=`.status.summary.expired`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="DryRun",type=boolean,JSONPath=`.spec.dryRun`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DeviceAction struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the command. Immutable.
	// +required
	Spec DeviceActionSpec `json:"spec"`

	// status is the progress.
	// The default makes a new object InProgress for kstatus and Argo CD
	// until its controller has observed it: observedGeneration -1 never
	// equals metadata.generation.
	// +optional
	// +kubebuilder:default={"observedGeneration":-1}
	Status DeviceActionStatus `json:"status,omitempty"`
}

// DeviceActionList is a list of DeviceActions.
// +kubebuilder:object:root=true
type DeviceActionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DeviceAction `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DeviceAction{}, &DeviceActionList{})
}
