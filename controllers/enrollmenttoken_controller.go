// Package controllers holds one reconciler per kubemdm kind.
package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/conditions"
	"github.com/kubemdm/kubemdm/internal/patch"
)

// defaultWifiSecretRetry is how often a token waiting for its Wi-Fi password
// Secret looks again. That Secret belongs to the user and carries none of our
// labels, so it is read directly rather than watched.
const defaultWifiSecretRetry = 15 * time.Second

// EnrollmentTokenReconciler issues token values into owned Secrets and moves
// tokens through Pending, Expired and Deleted. The gateway moves them through
// Processing and Done as devices enroll.
type EnrollmentTokenReconciler struct {
	client.Client
	// APIReader reads Secrets the manager does not cache (the Wi-Fi password).
	APIReader client.Reader
	Recorder  events.EventRecorder
	// EnrollmentHost is the gateway address put into every payload.
	EnrollmentHost string
	// GatewayCABundle returns the PEM bundle that verifies the gateway; it
	// goes into the token Secret as ca.crt and, as a pin, into the payload.
	GatewayCABundle func() []byte
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// WifiSecretRetry overrides defaultWifiSecretRetry when positive.
	WifiSecretRetry time.Duration

	counts countGate

	superseded patch.Superseded
}

// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=enrollmenttokens,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=enrollmenttokens/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=enrollmenttokens/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one EnrollmentToken to its desired state.
func (r *EnrollmentTokenReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	token := &mdmv1alpha1.EnrollmentToken{}
	if err := r.Get(ctx, req.NamespacedName, token); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	patcher, stale := r.superseded.NewHelper(token)
	if stale {
		return ctrl.Result{}, nil
	}
	before := token.Status.Phase
	destroyed := false
	defer func() {
		if patcher.Finish(ctx, r.Client, token, &res, &retErr) && (token.Status.Phase != before || destroyed) {
			r.recordTransition(ctx, token, before)
		}
	}()

	if !token.DeletionTimestamp.IsZero() {
		destroyed, retErr = r.reconcileDelete(ctx, token)
		return ctrl.Result{}, retErr
	}
	if controllerutil.AddFinalizer(token, mdmv1alpha1.Finalizer) {
		// The deferred patch adds the finalizer; its watch event brings us back.
		return ctrl.Result{}, nil
	}
	res, retErr = r.reconcileNormal(ctx, token, &destroyed)
	if retErr != nil {
		return res, retErr
	}
	wait, err := r.count(ctx, token)
	if wait > 0 && (res.RequeueAfter == 0 || wait < res.RequeueAfter) {
		res.RequeueAfter = wait
	}
	return res, err
}

func (r *EnrollmentTokenReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// reconcileNormal sets *destroyed when it deleted the token's value.
func (r *EnrollmentTokenReconciler) reconcileNormal(ctx context.Context, token *mdmv1alpha1.EnrollmentToken, destroyed *bool) (ctrl.Result, error) {
	expiresAt := tokenExpiry(token)
	token.Status.ExpiresAt = &expiresAt
	token.Status.EnrollmentHost = r.EnrollmentHost

	if token.Status.Phase == mdmv1alpha1.TokenProcessing && !token.Spec.Perpetual {
		wait, err := r.settleClaim(ctx, token)
		if err != nil || wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, err
		}
	}
	switch phase := nextTokenPhase(token, r.now()); phase {
	case mdmv1alpha1.TokenPending, mdmv1alpha1.TokenProcessing:
		token.Status.Phase = phase
	default:
		token.Status.Phase = phase
		var err error
		*destroyed, err = r.retire(ctx, token)
		return ctrl.Result{}, err
	}

	wifiPassword, err := r.wifiPassword(ctx, token)
	if err != nil {
		var missing *missingSecretError
		if errors.As(err, &missing) {
			awaitWifiSecret(token, missing)
			return ctrl.Result{RequeueAfter: cmp.Or(r.WifiSecretRetry, defaultWifiSecretRetry)}, nil
		}
		return ctrl.Result{}, err
	}
	if err := r.ensureSecret(ctx, token, wifiPassword); err != nil {
		var conflict *secretConflictError
		if errors.As(err, &conflict) {
			conditions.MarkStalled(token, "SecretConflict", conflict.Error())
			token.Status.ObservedGeneration = token.Generation
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
		return ctrl.Result{}, err
	}

	settleIssuedToken(token)
	token.Status.ObservedGeneration = token.Generation
	// Wake up at the instant of expiry rather than polling for it.
	return ctrl.Result{RequeueAfter: max(expiresAt.Sub(r.now()), time.Millisecond)}, nil
}

// settleClaim finishes a one-time token left Processing by an enrollment
// whose gateway failed to record it or stopped: Done when a Device enrolled
// with it, Pending again once ClaimTimeout passed without one. It returns
// how long to wait for the claim to end on its own.
func (r *EnrollmentTokenReconciler) settleClaim(ctx context.Context, token *mdmv1alpha1.EnrollmentToken) (time.Duration, error) {
	devices, err := r.enrolledDevices(ctx, token)
	if err != nil {
		return 0, err
	}
	if len(devices) > 0 {
		token.Status.Phase, token.Status.ClaimedAt = mdmv1alpha1.TokenDone, nil
		return 0, nil
	}
	claimed := token.CreationTimestamp.Time
	if token.Status.ClaimedAt != nil {
		claimed = token.Status.ClaimedAt.Time
	}
	if left := claimed.Add(mdmv1alpha1.ClaimTimeout).Sub(r.now()); left > 0 {
		return left, nil
	}
	token.Status.Phase, token.Status.ClaimedAt = mdmv1alpha1.TokenPending, nil
	return 0, nil
}

// retire destroys the value of a token that can no longer enroll and settles
// its conditions. The object itself stays for audit.
func (r *EnrollmentTokenReconciler) retire(ctx context.Context, token *mdmv1alpha1.EnrollmentToken) (destroyed bool, err error) {
	if destroyed, err = r.destroySecret(ctx, token); err != nil {
		return false, err
	}
	settleFinishedToken(token)
	token.Status.ObservedGeneration = token.Generation
	return destroyed, nil
}

func (r *EnrollmentTokenReconciler) reconcileDelete(ctx context.Context, token *mdmv1alpha1.EnrollmentToken) (destroyed bool, err error) {
	token.Status.Phase = mdmv1alpha1.TokenDeleted
	r.counts.forget(client.ObjectKeyFromObject(token))
	if destroyed, err = r.destroySecret(ctx, token); err != nil {
		return false, err
	}
	conditions.MarkReconciling(token, mdmv1alpha1.TokenReasonDeleting, "Token is being deleted; its value is destroyed")
	controllerutil.RemoveFinalizer(token, mdmv1alpha1.Finalizer)
	return destroyed, nil
}

// tokenExpiry is spec.expiresAt, or creation plus spec.ttl (default 24h).
func tokenExpiry(token *mdmv1alpha1.EnrollmentToken) metav1.Time {
	if token.Spec.ExpiresAt != nil {
		return *token.Spec.ExpiresAt
	}
	ttl := mdmv1alpha1.DefaultTokenTTL
	if token.Spec.TTL != nil {
		ttl = token.Spec.TTL.Duration
	}
	return metav1.NewTime(token.CreationTimestamp.Add(ttl))
}

// nextTokenPhase decides the phase the controller owns. Processing and Done
// are set by the gateway; the controller keeps them, except that revocation
// and expiry end any token that is not already Done.
func nextTokenPhase(token *mdmv1alpha1.EnrollmentToken, now time.Time) mdmv1alpha1.EnrollmentTokenPhase {
	current := token.Status.Phase
	switch {
	case token.Spec.Revoked || current == mdmv1alpha1.TokenDeleted:
		return mdmv1alpha1.TokenDeleted
	case current == mdmv1alpha1.TokenDone, current == mdmv1alpha1.TokenExpired:
		return current
	case !now.Before(tokenExpiry(token).Time):
		return mdmv1alpha1.TokenExpired
	case current == mdmv1alpha1.TokenProcessing:
		return current
	}
	return mdmv1alpha1.TokenPending
}

// settleIssuedToken marks a token whose value exists and enrolls devices.
// Processing is still Ready: the token keeps working while a device enrolls.
func settleIssuedToken(token *mdmv1alpha1.EnrollmentToken) {
	conditions.MarkReady(token, mdmv1alpha1.TokenReasonIssued,
		fmt.Sprintf("Token enrolls devices until %s", token.Status.ExpiresAt.UTC().Format(time.RFC3339)))
}

// settleFinishedToken sets the conditions of a token that can no longer
// enroll. A spent one-time token did its job and a revoked one is what its
// spec asks: both are Ready (kstatus Current). An expired token did not get
// to do what it was made for and needs a person: Stalled (kstatus Failed).
func settleFinishedToken(token *mdmv1alpha1.EnrollmentToken) {
	reason, message := tokenPhaseReason(token)
	if token.Status.Phase == mdmv1alpha1.TokenExpired {
		conditions.MarkStalled(token, reason, message)
		return
	}
	conditions.MarkReady(token, reason, message)
}

func tokenPhaseReason(token *mdmv1alpha1.EnrollmentToken) (reason, message string) {
	switch token.Status.Phase {
	case mdmv1alpha1.TokenDone:
		return mdmv1alpha1.TokenReasonConsumed, "One-time token enrolled its device; its value is destroyed"
	case mdmv1alpha1.TokenExpired:
		return mdmv1alpha1.TokenReasonExpired, fmt.Sprintf("Token expired at %s; its value is destroyed. Create a new EnrollmentToken to enroll more devices",
			token.Status.ExpiresAt.UTC().Format(time.RFC3339))
	default:
		return mdmv1alpha1.TokenReasonRevoked, "Token was revoked; its value is destroyed"
	}
}

// recordTransition emits one event per phase change or destroyed value, after
// it was written. Notes name the Secret, never the value in it.
func (r *EnrollmentTokenReconciler) recordTransition(ctx context.Context, token *mdmv1alpha1.EnrollmentToken, before mdmv1alpha1.EnrollmentTokenPhase) {
	after := token.Status.Phase
	if after == mdmv1alpha1.TokenProcessing {
		// Processing belongs to the gateway, which records each enrollment.
		return
	}
	var reason, note string
	switch {
	case !token.DeletionTimestamp.IsZero():
		reason, note = mdmv1alpha1.TokenReasonDeleting, "Token is being deleted; its value is destroyed"
	case after.Terminal():
		reason, note = tokenPhaseReason(token)
	case token.Status.SecretRef != nil:
		reason, note = mdmv1alpha1.TokenReasonIssued, "Token issued; its value is in Secret "+token.Status.SecretRef.Name
	default:
		return
	}
	if r.Recorder != nil {
		r.Recorder.Eventf(token, nil, corev1.EventTypeNormal, reason, string(after), "%s", note)
	}
	ctrl.LoggerFrom(ctx).Info("EnrollmentToken transition", "from", before, "to", after, "reason", reason)
}

// SetupWithManager registers the reconciler; it owns the token Secrets so
// that a deleted or edited Secret is put right at once.
func (r *EnrollmentTokenReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &mdmv1alpha1.Device{}, indexEnrolledWith, enrolledWith); err != nil {
		return fmt.Errorf("indexing Devices by enrollment token: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&mdmv1alpha1.EnrollmentToken{}).
		Owns(&corev1.Secret{}).
		// A token counts the Devices that enrolled with it.
		Watches(&mdmv1alpha1.Device{}, handler.EnqueueRequestsFromMapFunc(tokenOfDevice), builder.WithPredicates(enrollmentChanged)).
		Named("enrollmenttoken").
		Complete(r)
}

// awaitWifiSecret marks a token that cannot issue its value before the
// Wi-Fi Secret its QR code names exists: work still to do, so kstatus
// reads it InProgress rather than settled.
func awaitWifiSecret(token *mdmv1alpha1.EnrollmentToken, missing *missingSecretError) {
	conditions.MarkReconciling(token, mdmv1alpha1.TokenReasonWifiSecretUnavailable, missing.Error())
}
