package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	"github.com/kubemdm/kubemdm/controllers/eligibility"
	"github.com/kubemdm/kubemdm/internal/conditions"
	"github.com/kubemdm/kubemdm/internal/enrollment"
	"github.com/kubemdm/kubemdm/internal/index"
	"github.com/kubemdm/kubemdm/internal/patch"
)

// maxFailureEvents bounds the per-device failure events of one action; the
// status rows hold every failure.
const maxFailureEvents = 20

// DeviceActionReconciler runs DeviceActions: it resolves the targets once,
// checks eligibility, queues one command per eligible device in the status
// (the queue is the status: nothing else holds it), follows the results the
// gateway writes into the rows, expires what missed its deadline and
// finishes the action.
type DeviceActionReconciler struct {
	client.Client
	// APIReader reads a Device's managedFields, which the cache strips;
	// nil reads through Client.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// CancelGrace is how long a deleted action waits for the devices that
	// hold its command to answer the cancel; zero means DefaultCancelGrace.
	CancelGrace time.Duration

	order    startOrder
	claims   deviceClaims
	progress progressWrites

	superseded patch.Superseded
}

func (r *DeviceActionReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=deviceactions,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=deviceactions/finalizers,verbs=update

// Reconcile advances one DeviceAction.
func (r *DeviceActionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	action := &mdmv1alpha1.DeviceAction{}
	if err := r.Get(ctx, req.NamespacedName, action); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	patcher, stale := r.superseded.NewHelper(action)
	if stale {
		return ctrl.Result{}, nil
	}
	if action.Status.Phase.Finished() {
		return r.reconcileFinished(ctx, patcher, action)
	}
	failedBefore := countPhase(action.Status.Devices, mdmv1alpha1.CommandFailed)
	starting := action.Status.Phase == "" || action.Status.Phase == mdmv1alpha1.ActionPending
	// Deferred first, so it runs last: the devices are given back only
	// once the status that holds this pass's decisions is written.
	hold := claim{claims: &r.claims}
	defer hold.release()
	defer func() {
		// A finished action has nothing left to undo: its deletion need
		// not wait. The status is written before the finalizer goes.
		if action.Status.Phase.Finished() {
			controllerutil.RemoveFinalizer(action, mdmv1alpha1.Finalizer)
		}
		if retErr == nil {
			if wait := r.progress.hold(patcher.Before().(*mdmv1alpha1.DeviceAction), action, r.now()); wait > 0 &&
				(res.RequeueAfter == 0 || wait < res.RequeueAfter) {
				res.RequeueAfter = wait
			}
		}
		if patcher.Finish(ctx, r.Client, action, &res, &retErr) {
			r.recordProgress(action, starting, failedBefore)
		}
	}()

	// The finalizer lets a deleted action cancel its commands and undo
	// what it did to devices before it goes. A dry run changes nothing.
	// A starting action goes on in the same pass: it only records rows,
	// and changes no device until they are stored, and the deferred patch
	// stores an added finalizer before the status. Waiting for the
	// finalizer's watch event instead cost every new action seconds at
	// fleet size. Any other pass may change devices, so it returns and
	// waits for that event.
	added := !canceling(action) && !action.Spec.DryRun && controllerutil.AddFinalizer(action, mdmv1alpha1.Finalizer)
	if added && !starting {
		return ctrl.Result{}, nil
	}
	if starting {
		if canceling(action) {
			r.order.forget(action.UID)
			r.cancelBeforeStart(action)
			return ctrl.Result{}, nil
		}
		if wait, err := r.start(ctx, action, &hold); err != nil || wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, err
		}
		if countPhase(action.Status.Devices, mdmv1alpha1.CommandPending) > 0 {
			// The rows are written before any device is changed for them;
			// the status patch's watch event brings us back to change them.
			action.Status.Summary = summarize(action.Status.Devices)
			conditions.MarkReconciling(action, "Starting", "Recording the devices' rows before changing the devices")
			return ctrl.Result{}, nil
		}
	}
	return r.follow(ctx, action, patcher.Before().(*mdmv1alpha1.DeviceAction), &hold)
}

// start resolves the targets and checks each against the eligibility table.
// It only records rows: an eligible device's row is Queued, or Pending when
// queueing changes the device, which follow does once the rows are stored.
// An action waits, briefly, for target Devices their controller has yet to
// give a phase: a Device an enrollment created a moment ago is enrolled,
// and judging it before its controller settled it would find it ineligible.
// It claims its targets before it judges them (see deviceClaims).
func (r *DeviceActionReconciler) start(ctx context.Context, action *mdmv1alpha1.DeviceAction, hold *claim) (time.Duration, error) {
	now := metav1.NewTime(r.now())
	if r.order.olderUnresolved(action.UID, action.CreationTimestamp.Time, action.Namespace, now.Time) {
		// Its turn cannot be known before the older action says which
		// devices it targets; resolving this one's meanwhile is wasted.
		return orderWait, nil
	}
	targets, err := r.targets(ctx, action)
	arrived := now.Time
	if err == nil {
		names := targetNames(targets)
		arrived = r.order.resolved(action.UID, action.CreationTimestamp.Time, action.Namespace, names, now.Time)
		if wait := unsettledWait(action, targets, now.Time); wait > 0 {
			return wait, nil
		}
		if r.order.olderWaiting(action.UID, names, now.Time) {
			// An action created before this one waits for the same
			// device: it goes first.
			return orderWait, nil
		}
		// Claimed before this action stops holding newer ones back: a
		// newer action that finds it started waits for the claim until
		// these rows are stored.
		if hold.take(action.Namespace, names) {
			// Another action's pass held a target and may have changed
			// it: judge the Devices as they are now, not as read before.
			targets, err = r.targets(ctx, action)
			if err == nil && !slices.Equal(targetNames(targets), names) {
				// The selector matches other Devices by now: claim those.
				return orderWait, nil
			}
		}
	}
	r.order.forget(action.UID)
	// Stamped with when the action arrived, so that of two actions created
	// in one second the older sorts first wherever they wait.
	queuedAt := metav1.NewMicroTime(arrived)
	action.Status.StartTime, action.Status.QueuedAt = &now, &queuedAt
	if err != nil {
		var tooMany *tooManyTargetsError
		if errors.As(err, &tooMany) {
			failTooManyTargets(action, tooMany, now)
			return 0, reconcile.TerminalError(err)
		}
		return 0, err
	}
	// Rows in name order, whatever order spec.devices or the cache gave, so
	// that people find a device in kubectl output.
	slices.SortFunc(targets, func(a, b target) int { return strings.Compare(a.name, b.name) })
	changesDevice := changesDeviceOnQueue(action)
	rows := make([]mdmv1alpha1.DeviceResult, 0, len(targets))
	for _, t := range targets {
		row := mdmv1alpha1.DeviceResult{Name: t.name}
		if t.device == nil {
			row.Phase, row.Code, row.Message, row.CompletedAt = mdmv1alpha1.CommandFailed, mdmv1alpha1.CodeNotFound,
				fmt.Sprintf("Device %q does not exist in namespace %s", t.name, action.Namespace), &now
			rows = append(rows, row)
			continue
		}
		row.DeviceUID = t.device.UID
		switch v := eligibility.Check(action.Spec.Action, t.device); {
		case !v.Eligible:
			row.Phase, row.Code, row.Message, row.CompletedAt = mdmv1alpha1.CommandIneligible, v.Code, v.Reason, &now
		case action.Spec.DryRun:
			row.Phase, row.Message, row.CompletedAt = mdmv1alpha1.CommandSucceeded, "Eligible; dry run, nothing was sent", &now
		case changesDevice:
			row.Phase = mdmv1alpha1.CommandPending
		default:
			row.Phase, row.QueuedAt = mdmv1alpha1.CommandQueued, &now
		}
		rows = append(rows, row)
	}
	action.Status.Devices = rows
	action.Status.Phase = mdmv1alpha1.ActionRunning
	return 0, nil
}

// orderWait is how soon an action that let an older one start first looks
// again.
const orderWait = 20 * time.Millisecond

// unsettledGrace bounds how long an action waits for its targets to get a
// phase; past it, a Device still without one is judged as it is.
const unsettledGrace = 10 * time.Second

// unsettledWait is how long to wait before starting, because a target
// Device has no phase yet.
func unsettledWait(action *mdmv1alpha1.DeviceAction, targets []target, now time.Time) time.Duration {
	if now.Sub(action.CreationTimestamp.Time) >= unsettledGrace {
		return 0
	}
	for _, t := range targets {
		if t.device == nil || t.device.Status.Phase != "" {
			continue
		}
		// A Device being deleted is judged at once, unless it carries an
		// enrollment record its controller has yet to store: that
		// controller created this action (its deletion policy) on the
		// enrolled phase it is writing.
		if _, pending := enrollment.PendingRecord(t.device); pending || t.device.DeletionTimestamp.IsZero() {
			return 200 * time.Millisecond
		}
	}
	return 0
}

// queuePending makes, for each Pending row, the change queueing does to its
// device, then queues the row. The rows were stored first, so a failed
// write leaves them Pending for the next try, which never asks the
// eligibility table again about a phase the action set itself.
func (r *DeviceActionReconciler) queuePending(ctx context.Context, action *mdmv1alpha1.DeviceAction, now time.Time) error {
	at := metav1.NewTime(now)
	for i := range action.Status.Devices {
		row := &action.Status.Devices[i]
		if row.Phase != mdmv1alpha1.CommandPending {
			continue
		}
		d := &mdmv1alpha1.Device{}
		if err := r.Get(ctx, client.ObjectKey{Namespace: action.Namespace, Name: row.Name}, d); err != nil {
			if apierrors.IsNotFound(err) {
				continue // failReplacedDevices ends the row
			}
			return fmt.Errorf("reading Device %s: %w", row.Name, err)
		}
		if d.UID != row.DeviceUID {
			continue // replaced: failReplacedDevices ends the row
		}
		applied, reason, err := r.applySpec(ctx, action, d)
		if err != nil {
			return err
		}
		if !applied {
			row.Phase, row.Code, row.Message, row.CompletedAt = mdmv1alpha1.CommandFailed, mdmv1alpha1.CodeAborted, reason, &at
			continue
		}
		if err := r.onQueue(ctx, action.Spec.Action, d, now); err != nil {
			return err
		}
		row.Phase, row.QueuedAt = mdmv1alpha1.CommandQueued, &at
	}
	return nil
}

type target struct {
	name   string
	device *mdmv1alpha1.Device
}

// targetNames are the targets' names in order, whatever order the cache
// listed them in.
func targetNames(targets []target) []string {
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.name
	}
	slices.Sort(names)
	return names
}

type tooManyTargetsError struct{ n int }

func (e *tooManyTargetsError) Error() string {
	return fmt.Sprintf("the selector matches %d devices, more than the %d one action may target; narrow the selector or split the action",
		e.n, mdmv1alpha1.MaxSelectorMatches)
}

// targets resolves spec.devices or spec.selector, once, from the cache.
func (r *DeviceActionReconciler) targets(ctx context.Context, action *mdmv1alpha1.DeviceAction) ([]target, error) {
	if action.Spec.Selector == nil {
		out := make([]target, 0, len(action.Spec.Devices))
		for _, name := range action.Spec.Devices {
			d := &mdmv1alpha1.Device{}
			err := r.Get(ctx, client.ObjectKey{Namespace: action.Namespace, Name: name}, d)
			switch {
			case apierrors.IsNotFound(err):
				d = nil
			case err != nil:
				return nil, fmt.Errorf("reading Device %s: %w", name, err)
			}
			out = append(out, target{name: name, device: d})
		}
		return out, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(action.Spec.Selector)
	if err != nil {
		return nil, reconcile.TerminalError(fmt.Errorf("spec.selector: %w", err))
	}
	list := &mdmv1alpha1.DeviceList{}
	if err := r.List(ctx, list, client.InNamespace(action.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("listing Devices: %w", err)
	}
	if len(list.Items) > mdmv1alpha1.MaxSelectorMatches {
		return nil, &tooManyTargetsError{n: len(list.Items)}
	}
	out := make([]target, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, target{name: list.Items[i].Name, device: &list.Items[i]})
	}
	return out, nil
}

// follow expires rows past the deadline, applies the effects of finished
// rows to their devices and finishes the action when no row is open. An
// action whose rows change their devices claims them first; one that never
// changes a device (a Lock, a Sync) decides from its own rows only, and
// follows beside any other.
func (r *DeviceActionReconciler) follow(ctx context.Context, action, read *mdmv1alpha1.DeviceAction, hold *claim) (ctrl.Result, error) {
	if settlesOnDevice(action) {
		names := make([]string, len(action.Status.Devices))
		for i, row := range action.Status.Devices {
			names[i] = row.Name
		}
		hold.take(action.Namespace, names)
	}
	now := r.now()
	deadline := action.Deadline()
	// Only rows stored as ended (in the version read) do their part on the
	// devices: a row this pass ends (canceled, expired) might still lose to
	// a delivery the gateway records meanwhile, and must not undo anything
	// before its end is written; nor may a row the starting pass made, nor
	// before the finalizer that pass adds is stored.
	stored := map[string]bool{}
	for _, row := range read.Status.Devices {
		if !row.Phase.Unfinished() {
			stored[row.Name] = true
		}
	}
	var wake time.Time
	if canceling(action) {
		wake = r.cancelRows(action, now)
	}
	var errs []error
	if now.Before(deadline) {
		// A failed write ends this pass, but the rows queued before it
		// are kept: the deferred patch stores them.
		errs = append(errs, r.queuePending(ctx, action, now))
	}
	for i := range action.Status.Devices {
		row := &action.Status.Devices[i]
		if row.Phase.Unfinished() && !now.Before(deadline) {
			msg := "The device did not connect before the deadline"
			switch row.Phase {
			case mdmv1alpha1.CommandDelivered:
				msg = "The device did not report a result before the deadline"
			case mdmv1alpha1.CommandPending:
				msg = "The device could not be prepared for the command before the deadline"
			}
			at := metav1.NewTime(now)
			row.Phase, row.Code, row.Message, row.CompletedAt = mdmv1alpha1.CommandExpired, mdmv1alpha1.CodeDeadlineExceeded, msg, &at
		}
	}
	if err := r.failReplacedDevices(ctx, action, now); err != nil {
		return ctrl.Result{}, err
	}
	unsettled := 0
	for i := range action.Status.Devices {
		row := &action.Status.Devices[i]
		if !needsSettling(action, row) {
			continue
		}
		if !stored[row.Name] {
			unsettled++ // the next pass, once the row's end is stored
			continue
		}
		if err := r.settle(ctx, action, row); err != nil {
			errs = append(errs, err)
			unsettled++
			continue
		}
		row.Settled = true
	}
	if err := errors.Join(errs...); err != nil {
		if apierrors.IsConflict(err) {
			// A Device changed since the cache showed it: decide again on
			// the next read, soon, instead of backing off as for a failure.
			return ctrl.Result{RequeueAfter: patch.ConflictRetry}, nil
		}
		return ctrl.Result{}, err
	}

	s := summarize(action.Status.Devices)
	action.Status.Summary = s
	phase := finalPhase(s)
	if phase != "" && unsettled > 0 {
		// Every row has ended, but some have yet to do their part on
		// their devices; the status write of this pass brings us back.
		conditions.MarkReconciling(action, "Settling", fmt.Sprintf("%d devices have yet to take the outcome of their rows", unsettled))
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if phase == "" {
		reason, verb := "Running", "still to answer"
		if canceling(action) {
			reason, verb = "Canceling", "hold the command and have yet to answer the cancel"
		}
		conditions.MarkReconciling(action, reason, fmt.Sprintf("%d of %d devices %s", s.Pending+s.Queued+s.Delivered, s.Total, verb))
		if wake.IsZero() || deadline.Before(wake) {
			wake = deadline
		}
		return ctrl.Result{RequeueAfter: max(wake.Sub(now), time.Millisecond)}, nil
	}
	if canceling(action) && s.Canceled+s.Expired > 0 {
		phase = mdmv1alpha1.ActionCanceled
	}
	at := metav1.NewTime(now)
	action.Status.Phase, action.Status.CompletionTime = phase, &at
	message := fmt.Sprintf("%s on %d devices: %d succeeded, %d failed, %d ineligible, %d expired", action.Spec.Action,
		s.Total, s.Succeeded, s.Failed, s.Ineligible, s.Expired)
	if s.Canceled > 0 {
		message += fmt.Sprintf(", %d canceled", s.Canceled)
	}
	settleFinishedAction(action, phase, message)
	action.Status.ObservedGeneration = action.Generation
	return r.ttlResult(action, now), nil
}

// needsSettling reports whether an ended row has yet to do its part on its
// device. Rows that never reached a device (ineligible, missing) have none,
// nor do the actions whose outcome changes nothing in the Device (a Lock):
// their rows are never rewritten, which keeps a large fan-out to the
// gateway's small row patches.
func needsSettling(action *mdmv1alpha1.DeviceAction, row *mdmv1alpha1.DeviceResult) bool {
	return !action.Spec.DryRun && !row.Settled && !row.Phase.Unfinished() &&
		row.Phase != mdmv1alpha1.CommandIneligible && row.DeviceUID != "" && settlesOnDevice(action)
}

// settlesOnDevice reports whether an ended row of the action changes its
// Device (see onFinish).
func settlesOnDevice(a *mdmv1alpha1.DeviceAction) bool {
	switch a.Spec.Action {
	case mdmv1alpha1.ActionRetire, mdmv1alpha1.ActionDeprovision, mdmv1alpha1.ActionSyncCompliance:
		return true
	}
	return changesDeviceOnQueue(a)
}

// settle applies an ended row's outcome to its device, unless the Device is
// gone or is another one now.
func (r *DeviceActionReconciler) settle(ctx context.Context, action *mdmv1alpha1.DeviceAction, row *mdmv1alpha1.DeviceResult) error {
	d := &mdmv1alpha1.Device{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: action.Namespace, Name: row.Name}, d); err != nil {
		return client.IgnoreNotFound(err)
	}
	if row.DeviceUID != d.UID {
		return nil // the row was for a Device that is gone; this one is another
	}
	err := r.onFinish(ctx, action, *row, d)
	if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) {
		// Trying again cannot help, and the action must still end; people
		// learn it from the event.
		ctrl.LoggerFrom(ctx).Error(err, "Giving up on the outcome of a row on its device", "device", klog.KObj(d))
		if r.Recorder != nil {
			r.Recorder.Eventf(action, d, corev1.EventTypeWarning, "OutcomeNotApplied", "Settle",
				"The outcome of %s could not be applied to Device %s: %v", row.Name, d.Name, err)
		}
		return nil
	}
	return err
}

// failReplacedDevices ends the open rows whose Device was deleted, or
// deleted and created again under the same name: the command was for a
// device that is gone, and the new one must never run it.
func (r *DeviceActionReconciler) failReplacedDevices(ctx context.Context, action *mdmv1alpha1.DeviceAction, now time.Time) error {
	for i := range action.Status.Devices {
		row := &action.Status.Devices[i]
		if !row.Phase.Unfinished() || row.DeviceUID == "" {
			continue
		}
		d := &mdmv1alpha1.Device{}
		err := r.Get(ctx, client.ObjectKey{Namespace: action.Namespace, Name: row.Name}, d, client.UnsafeDisableDeepCopy)
		var msg string
		switch {
		case apierrors.IsNotFound(err):
			msg = fmt.Sprintf("Device %q was deleted before it completed the command; a Device created again under this name is another device and will not receive it", row.Name)
		case err != nil:
			return fmt.Errorf("reading Device %s: %w", row.Name, err)
		case d.UID != row.DeviceUID:
			msg = fmt.Sprintf("Device %q was replaced: it was deleted and created again (UID %s), and the command was for the deleted one (UID %s)", row.Name, d.UID, row.DeviceUID)
		default:
			continue
		}
		at := metav1.NewTime(now)
		row.Phase, row.Code, row.Message, row.CompletedAt = mdmv1alpha1.CommandFailed, mdmv1alpha1.CodeNotFound, msg, &at
	}
	return nil
}

// settleFinishedAction sets the conditions of a finished action. One that
// did not do everything it was asked is Stalled (kstatus Failed), so kubectl
// wait, Flux and Argo CD stop waiting and report it.
func settleFinishedAction(action *mdmv1alpha1.DeviceAction, phase mdmv1alpha1.ActionPhase, message string) {
	if phase == mdmv1alpha1.ActionSucceeded {
		conditions.MarkReady(action, string(phase), message)
		return
	}
	conditions.MarkStalled(action, string(phase), message)
}

// reconcileFinished drops the finalizer of a finished action, which has
// nothing left to undo, and deletes the action once its TTL passed.
func (r *DeviceActionReconciler) reconcileFinished(ctx context.Context, patcher *patch.Helper, action *mdmv1alpha1.DeviceAction) (ctrl.Result, error) {
	// A cancel set after the end changes the generation and nothing else:
	// it is observed, so kstatus reads the action as settled.
	removed := controllerutil.RemoveFinalizer(action, mdmv1alpha1.Finalizer)
	if removed || action.Status.ObservedGeneration != action.Generation {
		action.Status.ObservedGeneration = action.Generation
		var res ctrl.Result
		var err error
		if !patcher.Finish(ctx, r.Client, action, &res, &err) {
			return res, err
		}
	}
	left, ok := ttlLeft(action, r.now())
	switch {
	case !ok || !action.DeletionTimestamp.IsZero():
		return ctrl.Result{}, nil
	case left > 0:
		return ctrl.Result{RequeueAfter: left}, nil
	}
	if err := r.Delete(ctx, action, client.Preconditions{UID: &action.UID}); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("deleting finished DeviceAction: %w", err)
	}
	return ctrl.Result{}, nil
}

// ttlResult wakes the reconciler at the instant a finished action's TTL
// runs out.
func (r *DeviceActionReconciler) ttlResult(action *mdmv1alpha1.DeviceAction, now time.Time) ctrl.Result {
	if left, ok := ttlLeft(action, now); ok {
		return ctrl.Result{RequeueAfter: max(left, time.Millisecond)}
	}
	return ctrl.Result{}
}

// ttlLeft is how long a finished action has left to live, and whether it
// has a TTL at all.
func ttlLeft(action *mdmv1alpha1.DeviceAction, now time.Time) (time.Duration, bool) {
	ttl := action.Spec.TTLSecondsAfterFinished
	if ttl == nil || action.Status.CompletionTime == nil {
		return 0, false
	}
	return action.Status.CompletionTime.Add(time.Duration(*ttl) * time.Second).Sub(now), true
}

// recordProgress emits events for new failures and for the end, after the
// status that holds them was written.
func (r *DeviceActionReconciler) recordProgress(action *mdmv1alpha1.DeviceAction, started bool, failedBefore int) {
	if r.Recorder == nil {
		return
	}
	if started && action.Status.Summary != nil {
		s := action.Status.Summary
		r.Recorder.Eventf(action, nil, corev1.EventTypeNormal, "Started", "Start",
			"%s queued for %d of %d devices (%d ineligible)", action.Spec.Action, countPhase(action.Status.Devices, mdmv1alpha1.CommandQueued), s.Total, s.Ineligible)
	}
	seen := 0
	for _, row := range action.Status.Devices {
		if row.Phase != mdmv1alpha1.CommandFailed {
			continue
		}
		seen++
		if seen > failedBefore && seen <= maxFailureEvents {
			r.Recorder.Eventf(action, nil, corev1.EventTypeWarning, "DeviceFailed", "Complete", "%s: %s (code %d)", row.Name, row.Message, row.Code)
		}
	}
	if action.Status.Phase.Finished() {
		eventType := corev1.EventTypeNormal
		if action.Status.Phase != mdmv1alpha1.ActionSucceeded {
			eventType = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(action, nil, eventType, string(action.Status.Phase), "Finish", "%s",
			conditions.Message(action, mdmv1alpha1.ConditionReady))
	}
}

func countPhase(rows []mdmv1alpha1.DeviceResult, p mdmv1alpha1.DeviceCommandPhase) int {
	n := 0
	for _, r := range rows {
		if r.Phase == p {
			n++
		}
	}
	return n
}

// SetupWithManager registers the reconciler. Besides its own kind it
// watches Devices being created and deleted, to end the open rows of a
// device that was deleted or replaced.
func (r *DeviceActionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := index.Register(context.Background(), mgr.GetFieldIndexer(), index.OpenCommands); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		// Not For: actionEvents stamps each action as it arrives and keeps
		// the unfinished ones a restart finds out of the low-priority lane.
		Watches(&mdmv1alpha1.DeviceAction{}, actionEvents{order: &r.order, progress: &r.progress, now: r.now}).
		Watches(&mdmv1alpha1.Device{}, handler.EnqueueRequestsFromMapFunc(r.actionsWithOpenRows),
			builder.WithPredicates(predicate.Funcs{
				UpdateFunc:  func(event.UpdateEvent) bool { return false },
				GenericFunc: func(event.GenericEvent) bool { return false },
			})).
		Named("deviceaction").
		WithLogConstructor(actionLogger(mgr.GetLogger())).
		// As many workers as --max-concurrent-reconciles: actions that
		// share a device take turns on it (see deviceClaims).
		Complete(r)
}

// actionsWithOpenRows maps a Device to the actions still waiting on a device
// of its name.
func (r *DeviceActionReconciler) actionsWithOpenRows(ctx context.Context, o client.Object) []reconcile.Request {
	list := &mdmv1alpha1.DeviceActionList{}
	if err := r.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index.OpenCommands: o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the DeviceActions of a Device", "device", klog.KObj(o))
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return out
}

// failTooManyTargets ends an action whose selector matched more Devices
// than one action may hold: bad configuration, so Stalled and settled.
func failTooManyTargets(action *mdmv1alpha1.DeviceAction, tooMany *tooManyTargetsError, now metav1.Time) {
	action.Status.Phase = mdmv1alpha1.ActionFailed
	action.Status.CompletionTime = &now
	action.Status.Summary = &mdmv1alpha1.ActionSummary{}
	conditions.MarkStalled(action, "TooManyTargets", tooMany.Error())
	action.Status.ObservedGeneration = action.Generation
}
