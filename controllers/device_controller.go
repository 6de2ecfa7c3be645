package controllers

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/controllers/compliance"
	"github.com/kubemdm/kubemdm/internal/conditions"
	"github.com/kubemdm/kubemdm/internal/configset"
	"github.com/kubemdm/kubemdm/internal/enrollment"
	"github.com/kubemdm/kubemdm/internal/lifecycle"
	"github.com/kubemdm/kubemdm/internal/patch"
)

// Reasons of the Device's Ready and Enrolled conditions.
const (
	// DeviceReasonAwaitingEnrollment means no agent enrolled yet.
	DeviceReasonAwaitingEnrollment = "AwaitingEnrollment"
	// DeviceReasonEnrolled means an agent enrolled and the device is managed.
	DeviceReasonEnrolled = "Enrolled"
	// DeviceReasonReleased means the device left management (wiped,
	// retired, unenrolled or deprovisioned).
	DeviceReasonReleased = "Released"
	// DeviceReasonConfigPending means the device has not applied the
	// latest desired configuration yet.
	DeviceReasonConfigPending = "ConfigPending"
	// DeviceReasonConfigFailed means a configuration failed on the device.
	DeviceReasonConfigFailed = "ConfigurationFailed"
	// DeviceReasonConfigApplied means the device runs the latest desired
	// configuration.
	DeviceReasonConfigApplied = "ConfigApplied"
	// DeviceReasonWaitingForDevice means the controller has done its part
	// and the device applies the latest configuration when it next
	// connects. The Device is settled (kstatus Current): a fleet with some
	// phones switched off is healthy.
	DeviceReasonWaitingForDevice = "WaitingForDevice"
)

// DeviceReasonEnrollmentRecordRejected is the reason of the Warning event
// on a Device whose enrollment record does not verify.
const DeviceReasonEnrollmentRecordRejected = "EnrollmentRecordRejected"

// DeviceReconciler keeps a Device's phase and its Enrolled and Ready
// conditions. The gateway writes what the agent reports (facts, lastSeen,
// Connected) under its own field managers.
type DeviceReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// DeletionTimeout bounds how long a deleted Device waits for its device;
	// zero means DefaultDeletionTimeout.
	DeletionTimeout time.Duration
	// SeenWindow is how recently a compliant device's agent must have been
	// seen; zero means compliance.DefaultSeenWindow.
	SeenWindow time.Duration
	// ApplyGrace is how long a device may take to apply a configuration
	// revision before it is NonCompliant for it; zero means
	// compliance.DefaultApplyGrace.
	ApplyGrace time.Duration
	// DeviceCAKey verifies the enrollment records the gateway signs on the
	// Devices it creates (mdmv1alpha1.AnnotationEnrollment). Without it a
	// record is never taken, and those Devices wait for a phase.
	DeviceCAKey *ecdsa.PublicKey

	superseded patch.Superseded
}

// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=devices,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=devices/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=devices/finalizers,verbs=update
// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=deviceactions,verbs=get;list;watch
// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=configurations,verbs=get;list;watch
// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=deviceactions/status,verbs=get;update;patch

// Reconcile settles one Device's conditions.
func (r *DeviceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	device := &mdmv1alpha1.Device{}
	if err := r.Get(ctx, req.NamespacedName, device); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	patcher, stale := r.superseded.NewHelper(device)
	if stale {
		return ctrl.Result{}, nil
	}
	defer func() { patcher.Finish(ctx, r.Client, device, &res, &retErr) }()

	if wait := connectionDue(device, time.Now()); wait > 0 {
		// The agent connects a moment after it enrolled: its connection
		// and first report bring this Device back, and the enrollment
		// goes into the status with the conditions they settle, in one
		// write instead of two.
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	r.adoptEnrollment(ctx, device)
	if wait := enrollmentUnderWay(device, time.Now()); wait > 0 {
		// The gateway writes this Device's phase in a moment; a status
		// written now would only be overwritten.
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	if phase, moves := lifecycle.Next(device, lifecycle.Created); moves {
		device.Status.Phase = phase
	}
	if !device.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, device)
	}
	// The finalizer runs spec.deletionPolicy, so that removing a Device
	// from Git retires the device rather than orphaning it. Settling only
	// computes the status, so it goes on in the same pass: a new Device
	// costs one finalizer write and one status write, not a second status
	// write from a second pass.
	controllerutil.AddFinalizer(device, mdmv1alpha1.Finalizer)
	rules, err := r.complianceRules(ctx, device)
	if err != nil {
		return ctrl.Result{}, err
	}
	res.RequeueAfter = r.settle(device, rules, time.Now())
	device.Status.ObservedGeneration = device.Generation
	return res, nil
}

// adoptEnrollment copies the enrollment record the gateway signed on a
// Device it created into the status: phase, enrolledAt, token and key go
// out with this pass's one status write, and the enrollment costs the
// apiserver no write of its own. A record that does not verify is
// ignored: anyone who may create Devices can write an annotation. A Device
// deleted before its record was copied is adopted too: it is enrolled, and
// its deletion policy must run on the device rather than release it as
// never enrolled.
func (r *DeviceReconciler) adoptEnrollment(ctx context.Context, d *mdmv1alpha1.Device) {
	value, ok := enrollment.PendingRecord(d)
	if !ok {
		return
	}
	rec, err := enrollment.Verify(value, r.DeviceCAKey, d.Namespace, d.Name, d.CreationTimestamp.Time)
	if err != nil {
		ctrl.LoggerFrom(ctx).Info("Ignoring the Device's enrollment record", "reason", err.Error())
		if r.Recorder != nil {
			r.Recorder.Eventf(d, nil, corev1.EventTypeWarning, DeviceReasonEnrollmentRecordRejected, "Enroll",
				"The %s annotation was not taken: %v", mdmv1alpha1.AnnotationEnrollment, err)
		}
		return
	}
	phase, _ := lifecycle.Next(d, lifecycle.Enrolled)
	at := metav1.NewTime(rec.At)
	d.Status.Phase, d.Status.EnrolledAt, d.Status.EnrollmentToken, d.Status.EnrollmentKey = phase, &at, rec.Token, rec.Key
}

// connectionWait is how long the enrollment record of a Device an
// enrollment created waits for the agent's first connection before the
// controller copies it into the status on its own.
const connectionWait = 5 * time.Second

// connectionDue returns how long to leave a Device whose enrollment record
// awaits its controller, until its agent is shown connected.
func connectionDue(d *mdmv1alpha1.Device, now time.Time) time.Duration {
	if _, pending := enrollment.PendingRecord(d); !pending || !d.DeletionTimestamp.IsZero() ||
		conditions.IsTrue(d, mdmv1alpha1.DeviceConditionConnected) {
		return 0
	}
	return max(d.CreationTimestamp.Add(connectionWait).Sub(now), 0)
}

// enrollingGrace is how long a Device an enrollment created may go without
// a phase before the controller settles it as Registered: the gateway writes
// Enrolled within milliseconds unless it failed on the way.
const enrollingGrace = 30 * time.Second

// enrollmentUnderWay returns how long to leave a Device the gateway created
// for an enrollment and has yet to mark enrolled.
func enrollmentUnderWay(d *mdmv1alpha1.Device, now time.Time) time.Duration {
	if d.Status.Phase != "" || d.Labels[mdmv1alpha1.LabelEnrollmentToken] == "" || !d.DeletionTimestamp.IsZero() {
		return 0
	}
	return max(d.CreationTimestamp.Add(enrollingGrace).Sub(now), 0)
}

// settle sets the phase's conditions of a Device that is not being deleted
// and returns when to look again. Every phase ends Ready, Reconciling or
// Stalled, so kstatus never reads a settled Device as still in progress.
func (r *DeviceReconciler) settle(device *mdmv1alpha1.Device, rules []compliance.Rules, now time.Time) time.Duration {
	switch phase := device.Status.Phase; {
	case phase == mdmv1alpha1.DeviceRegistered:
		// A pre-registered device may stay in its box for months; the
		// object is settled and the wait shows in Enrolled.
		conditions.Set(device, mdmv1alpha1.DeviceConditionEnrolled, metav1.ConditionFalse, DeviceReasonAwaitingEnrollment,
			"No agent has enrolled as this device yet")
		conditions.MarkReady(device, DeviceReasonAwaitingEnrollment,
			"Registered; an agent enrolling with an EnrollmentToken and this serial number claims it")
	case !phase.Managed():
		// The device left management because an action asked for it.
		conditions.Set(device, mdmv1alpha1.DeviceConditionEnrolled, metav1.ConditionFalse, DeviceReasonReleased,
			fmt.Sprintf("Device is %s and no longer managed", phase))
		conditions.MarkReady(device, DeviceReasonReleased, fmt.Sprintf("Device is %s and no longer managed", phase))
	default:
		conditions.Set(device, mdmv1alpha1.DeviceConditionEnrolled, metav1.ConditionTrue, DeviceReasonEnrolled,
			fmt.Sprintf("Enrolled with EnrollmentToken %s", device.Status.EnrollmentToken))
		r.converge(device)
		return r.evaluateCompliance(device, rules, now)
	}
	return 0
}

// converge sets ConfigApplied and Ready from what the agent reported, and
// starts a reassignment when spec.owner changed. Only a connected device
// that has yet to apply the latest generation is Reconciling: that is work
// under way. An offline one is settled until it connects.
func (r *DeviceReconciler) converge(d *mdmv1alpha1.Device) {
	if owner := d.Spec.Owner; owner != "" && (d.Status.Reassignment == nil || d.Status.Reassignment.Owner != owner) {
		now := metav1.Now()
		d.Status.Reassignment = &mdmv1alpha1.ReassignmentStatus{Phase: mdmv1alpha1.ReassignmentInitiated, Owner: owner, Time: &now}
	}
	var failed []string
	for _, c := range d.Status.Configurations {
		if c.State == mdmv1alpha1.ConfigurationFailed {
			failed = append(failed, c.Name)
		}
	}
	switch applied := d.Status.AppliedConfigGeneration; {
	case applied < d.Generation && !conditions.IsTrue(d, mdmv1alpha1.DeviceConditionConnected):
		msg := fmt.Sprintf("The device applied configuration generation %d of %d; it gets generation %d when it connects", applied, d.Generation, d.Generation)
		conditions.Set(d, mdmv1alpha1.DeviceConditionConfigApplied, metav1.ConditionFalse, DeviceReasonWaitingForDevice, msg)
		conditions.MarkReady(d, DeviceReasonWaitingForDevice, fmt.Sprintf("Device is %s; the configuration waits for the device to connect", d.Status.Phase))
	case applied < d.Generation:
		msg := fmt.Sprintf("The connected device is applying configuration generation %d (it runs %d)", d.Generation, applied)
		conditions.Set(d, mdmv1alpha1.DeviceConditionConfigApplied, metav1.ConditionFalse, DeviceReasonConfigPending, msg)
		conditions.MarkReconciling(d, DeviceReasonConfigPending, msg)
	case len(failed) > 0:
		msg := fmt.Sprintf("The device could not apply configurations %s; see status.configurations", strings.Join(failed, ", "))
		conditions.Set(d, mdmv1alpha1.DeviceConditionConfigApplied, metav1.ConditionFalse, DeviceReasonConfigFailed, msg)
		conditions.MarkStalled(d, DeviceReasonConfigFailed, msg)
	default:
		msg := fmt.Sprintf("The device applied configuration generation %d", d.Generation)
		conditions.Set(d, mdmv1alpha1.DeviceConditionConfigApplied, metav1.ConditionTrue, DeviceReasonConfigApplied, msg)
		conditions.MarkReady(d, DeviceReasonConfigApplied, fmt.Sprintf("Device is %s and converged", d.Status.Phase))
	}
}

// evaluateCompliance sets status.compliance and the Compliant condition,
// moving lastEvaluated only when the result changes, or when an evaluation
// was asked for since (AnnotationComplianceRequested), so that a steady
// device costs no writes. It returns when to look again: when the agent's
// last sighting leaves the window, or a request dated ahead falls due.
func (r *DeviceReconciler) evaluateCompliance(d *mdmv1alpha1.Device, rules []compliance.Rules, now time.Time) time.Duration {
	state, reasons, recheck := compliance.Evaluate(d, rules, now, r.SeenWindow)
	requested, wait := complianceRequested(d, now)
	if c := d.Status.Compliance; c == nil || c.State != state || !slices.Equal(c.Reasons, reasons) || requested {
		at := metav1.NewTime(now)
		d.Status.Compliance = &mdmv1alpha1.ComplianceStatus{State: state, Reasons: reasons, LastEvaluated: &at}
	}
	setCompliantCondition(d)
	var after time.Duration
	// A connected device stays seen until its stream closes, which is an
	// update of its own; only a disconnected one ages out of the window.
	if window := cmp.Or(r.SeenWindow, compliance.DefaultSeenWindow); d.Status.LastSeen != nil && !conditions.IsTrue(d, mdmv1alpha1.DeviceConditionConnected) && state == mdmv1alpha1.ComplianceCompliant {
		after = max(d.Status.LastSeen.Add(window).Sub(now), time.Second)
	}
	for _, w := range []time.Duration{wait, recheck} {
		if w > 0 && (after == 0 || w < after) {
			after = w
		}
	}
	return after
}

// complianceRequested reports whether an evaluation was asked for after the
// last one or, for a request dated ahead, how long until it is due. A
// request dated further ahead than a clock's skew is ignored.
func complianceRequested(d *mdmv1alpha1.Device, now time.Time) (bool, time.Duration) {
	requested, err := time.Parse(time.RFC3339, d.Annotations[mdmv1alpha1.AnnotationComplianceRequested])
	switch {
	case err != nil || requested.After(now.Add(mdmv1alpha1.ComplianceRequestSkew)):
		return false, 0
	case requested.After(now):
		return false, requested.Sub(now)
	}
	c := d.Status.Compliance
	return c == nil || c.LastEvaluated == nil || c.LastEvaluated.Time.Before(requested), 0
}

// setCompliantCondition mirrors status.compliance in the Compliant condition.
func setCompliantCondition(d *mdmv1alpha1.Device) {
	c := d.Status.Compliance
	switch {
	case c == nil || c.State == mdmv1alpha1.ComplianceUnknown:
		conditions.Set(d, mdmv1alpha1.DeviceConditionCompliant, metav1.ConditionUnknown, "NotEvaluated", "The device has not reported yet")
	case c.State == mdmv1alpha1.ComplianceCompliant:
		conditions.Set(d, mdmv1alpha1.DeviceConditionCompliant, metav1.ConditionTrue, string(c.State), "The device meets every rule of its configurations")
	default:
		conditions.Set(d, mdmv1alpha1.DeviceConditionCompliant, metav1.ConditionFalse, string(c.State), strings.Join(c.Reasons, "; "))
	}
}

// complianceRules are the Configurations that apply to the device, from
// the cache: the revision each is due at, by when, and its rules.
func (r *DeviceReconciler) complianceRules(ctx context.Context, d *mdmv1alpha1.Device) ([]compliance.Rules, error) {
	list := &mdmv1alpha1.ConfigurationList{}
	if err := r.List(ctx, list, client.InNamespace(d.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing Configurations: %w", err)
	}
	grace := cmp.Or(r.ApplyGrace, compliance.DefaultApplyGrace)
	var rules []compliance.Rules
	for _, t := range configset.Targets(d, list.Items) {
		if t.Excluded || t.Unsupported {
			continue
		}
		rule := compliance.Rules{Configuration: t.Name}
		if t.Config != nil {
			revision, since := configset.DueRevision(t.Config, d.UID)
			rule.Revision = revision
			if !since.IsZero() {
				// A device that enrolled since has had no time to apply
				// anything yet.
				if e := d.Status.EnrolledAt; e != nil && e.After(since) {
					since = e.Time
				}
				rule.Deadline = since.Add(grace)
			}
			if t.Config.Spec.Compliance != nil {
				rule.ComplianceRules = *t.Config.Spec.Compliance
			}
		}
		rules = append(rules, rule)
	}
	return rules, nil
}

// configurationDevices maps a Configuration whose spec changed to the
// Devices it targets, whose compliance may change with its rules.
func (r *DeviceReconciler) configurationDevices(ctx context.Context, o client.Object) []reconcile.Request {
	devices, err := targetedDevices(ctx, r.Client, o.(*mdmv1alpha1.Configuration))
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the Devices a Configuration targets", "configuration", klog.KObj(o))
		return nil
	}
	out := make([]reconcile.Request, 0, len(devices))
	for _, d := range devices {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&d)})
	}
	return out
}

// SetupWithManager registers the reconciler and the index of Devices by
// the configurations they name, which the Configuration controller shares.
func (r *DeviceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &mdmv1alpha1.Device{}, IndexAssignedConfigurations, assignedConfigurations); err != nil {
		return fmt.Errorf("indexing Devices by assigned configuration: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&mdmv1alpha1.Device{}).
		// A Configuration's rules, the revision it is due at and its
		// rollout's admissions change compliance; its counts, which move
		// with every device report, do not.
		Watches(&mdmv1alpha1.Configuration{}, handler.EnqueueRequestsFromMapFunc(r.configurationDevices),
			builder.WithPredicates(predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
				return configset.Republished(e.ObjectOld.(*mdmv1alpha1.Configuration), e.ObjectNew.(*mdmv1alpha1.Configuration))
			}})).
		// A deleted Device waits on its deletion action; its progress
		// brings the Device back.
		Watches(&mdmv1alpha1.DeviceAction{}, handler.EnqueueRequestsFromMapFunc(deletionActionDevice)).
		Named("device").
		Complete(r)
}

// deletionActionDevice maps a deletion-policy DeviceAction to its Device.
func deletionActionDevice(_ context.Context, o client.Object) []reconcile.Request {
	if name := o.GetLabels()[LabelDeletionOf]; name != "" {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: name}}}
	}
	return nil
}
