package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/conditions"
	"github.com/kubemdm/kubemdm/internal/configset"
	"github.com/kubemdm/kubemdm/internal/patch"
)

// IndexPayloadRefs finds the Configurations that name a Secret or ConfigMap,
// by "Secret/NAME" or "ConfigMap/NAME".
const IndexPayloadRefs = "spec.settings.payloadRefs"

// ConfigurationReconciler keeps a Configuration's revision, the hash of
// what devices receive, and says when a Secret or ConfigMap it names cannot
// be carried.
type ConfigurationReconciler struct {
	client.Client
	// APIReader tells a Secret without the device-payload label, which the
	// payload cache never holds, from a missing one.
	APIReader client.Reader
	// Payloads is the cache of labelled Secrets and ConfigMaps
	// (configset.NewPayloadCache).
	Payloads cache.Cache

	counts countGate

	superseded patch.Superseded
}

// configurationCountInterval is how often at most a Configuration's device
// counts and rollout are recomputed: a push to a fleet changes a row on
// every Device within seconds, and each change would otherwise list the
// targeted Devices and write the counts again.
const configurationCountInterval = time.Second

// rolloutCountInterval replaces it while a staged rollout is under way:
// each batch is admitted once the one before reported, and a second per
// batch would make a rollout of ten batches ten seconds slower.
const rolloutCountInterval = 100 * time.Millisecond

// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=configurations,verbs=get;list;watch
// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=configurations/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets;configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=mdm.kubemdm.io,resources=devices,verbs=get;list;watch

// Reconcile computes one Configuration's revision and counts its devices.
func (r *ConfigurationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	cfg := &mdmv1alpha1.Configuration{}
	if err := r.Get(ctx, req.NamespacedName, cfg); err != nil {
		if apierrors.IsNotFound(err) {
			r.counts.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	patcher, stale := r.superseded.NewHelper(cfg)
	if stale {
		return ctrl.Result{}, nil
	}
	defer func() { patcher.Finish(ctx, r.Client, cfg, &res, &retErr) }()
	if !cfg.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	payloads := configset.ReaderPayloads{Ctx: ctx, Cache: r.Payloads, Direct: r.APIReader, Namespace: cfg.Namespace}
	revision, err := configset.Revision(&cfg.Spec.Settings, payloads)
	if _, payloadErr := configset.IsPayloadError(err); err != nil && !payloadErr {
		return ctrl.Result{}, err
	}
	previous, observed := cfg.Status.Revision, cfg.Status.ObservedGeneration
	settleConfiguration(cfg, revision, err)
	if err == nil {
		startRollout(cfg, previous)
		if err := r.snapshot(ctx, cfg); err != nil {
			return ctrl.Result{}, err
		}
	}
	// A new spec or revision is counted at once; Device changes are
	// gathered for a moment, then counted together.
	if cfg.Status.Revision == previous && cfg.Status.ObservedGeneration == observed {
		every := configurationCountInterval
		if cfg.Status.Rollout != nil {
			every = rolloutCountInterval
		}
		if wait := r.counts.wait(req.NamespacedName, time.Now(), every); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
	}
	r.counts.mark(req.NamespacedName, time.Now())
	devices, err := targetedDevices(ctx, r.Client, cfg)
	if err != nil {
		return ctrl.Result{}, err
	}
	cfg.Status.Devices = countDevices(cfg, devices)
	if !conditions.IsTrue(cfg, mdmv1alpha1.ConditionStalled) {
		progressRollout(cfg, devices)
	}
	return ctrl.Result{}, nil
}

// settleConfiguration records a revision, or why none can be computed.
// Either way the controller's part is done: a Configuration waiting for a
// Secret is Stalled until that Secret changes, and devices' progress shows
// in status.devices, not in health, since an offline device may take
// weeks.
func settleConfiguration(cfg *mdmv1alpha1.Configuration, revision string, err error) {
	cfg.Status.ObservedGeneration = cfg.Generation
	if pe, ok := configset.IsPayloadError(err); ok {
		// Devices keep the revision they have: the gateway cannot render
		// this one. A label added or a Secret created shows up in the
		// payload cache, which brings the Configuration back.
		reason := mdmv1alpha1.ConfigurationReasonPayloadMissing
		if pe.NotAllowed {
			reason = mdmv1alpha1.ConfigurationReasonPayloadNotAllowed
		}
		conditions.MarkStalled(cfg, reason, fmt.Sprintf("Devices keep revision %q: %s", cfg.Status.Revision, pe.Error()))
		return
	}
	if cfg.Status.Revision != revision || cfg.Status.RevisionTime == nil {
		now := metav1.Now()
		cfg.Status.RevisionTime = &now
	}
	cfg.Status.Revision = revision
	conditions.MarkReady(cfg, mdmv1alpha1.ConfigurationReasonRevised, fmt.Sprintf("Revision %s goes to the targeted devices", revision))
}

// payloadRefKeys are the IndexPayloadRefs keys of a Configuration.
func payloadRefKeys(o client.Object) []string {
	var keys []string
	for _, ref := range configset.Refs(&o.(*mdmv1alpha1.Configuration).Spec.Settings) {
		keys = append(keys, ref.Kind+"/"+ref.Name)
	}
	return keys
}

// SetupWithManager registers the reconciler and its index. It needs the
// Device controller's index of assignments (DeviceReconciler.SetupWithManager).
func (r *ConfigurationReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &mdmv1alpha1.Configuration{}, IndexPayloadRefs, payloadRefKeys); err != nil {
		return fmt.Errorf("indexing Configurations by payload: %w", err)
	}
	referrers := func(kind string) handler.TypedMapFunc[client.Object, reconcile.Request] {
		return func(ctx context.Context, o client.Object) []reconcile.Request {
			list := &mdmv1alpha1.ConfigurationList{}
			if err := r.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{IndexPayloadRefs: kind + "/" + o.GetName()}); err != nil {
				ctrl.LoggerFrom(ctx).Error(err, "Listing the Configurations that name a payload", "kind", kind, "name", o.GetName())
				return nil
			}
			out := make([]reconcile.Request, 0, len(list.Items))
			for _, c := range list.Items {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&c)})
			}
			return out
		}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&mdmv1alpha1.Configuration{}).
		Watches(&mdmv1alpha1.Device{}, handler.EnqueueRequestsFromMapFunc(r.deviceConfigurations)).
		WatchesRawSource(source.Kind(r.Payloads, client.Object(&corev1.Secret{}), handler.EnqueueRequestsFromMapFunc(referrers("Secret")))).
		WatchesRawSource(source.Kind(r.Payloads, client.Object(&corev1.ConfigMap{}), handler.EnqueueRequestsFromMapFunc(referrers("ConfigMap")))).
		Named("configuration").
		Complete(r)
}
