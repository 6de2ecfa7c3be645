package gateway

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/configset"
	"github.com/kubemdm/kubemdm/internal/pki"
)

// Setup creates the gateway on a manager: its cache indexes, the informer
// handlers that push changes to open streams, and the server itself as a
// runnable on every replica.
func Setup(ctx context.Context, mgr ctrl.Manager, deviceCA *pki.CA, opts Options) (*Server, error) {
	if err := SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	if opts.Payloads == nil {
		payloads, err := configset.NewPayloadCache(mgr)
		if err != nil {
			return nil, err
		}
		opts.Payloads = payloads
	}
	s := New(mgr.GetClient(), mgr.GetAPIReader(), deviceCA, mgr.GetEventRecorder("kubemdm-gateway"), ctrl.Log.WithName("gateway"), opts)

	actions, err := mgr.GetCache().GetInformer(ctx, &mdmv1alpha1.DeviceAction{})
	if err != nil {
		return nil, fmt.Errorf("getting DeviceAction informer: %w", err)
	}
	if _, err := actions.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.onActionChange(o.(*mdmv1alpha1.DeviceAction)) },
		UpdateFunc: func(_, o any) { s.onActionChange(o.(*mdmv1alpha1.DeviceAction)) },
	}); err != nil {
		return nil, err
	}
	configs, err := mgr.GetCache().GetInformer(ctx, &mdmv1alpha1.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("getting Configuration informer: %w", err)
	}
	onConfig := func(o any) {
		if c, ok := o.(*mdmv1alpha1.Configuration); ok {
			s.onConfigurationChange(c)
		} else if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
			if c, ok := t.Obj.(*mdmv1alpha1.Configuration); ok {
				s.onConfigurationChange(c)
			}
		}
	}
	if _, err := configs.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: onConfig,
		UpdateFunc: func(old, o any) {
			if configset.Republished(old.(*mdmv1alpha1.Configuration), o.(*mdmv1alpha1.Configuration)) {
				onConfig(o)
			}
		},
		DeleteFunc: onConfig,
	}); err != nil {
		return nil, err
	}
	// What a stream renders also comes from the payload cache: the
	// ControllerRevision of a revision and the Secrets it names. A
	// Configuration's update may arrive before them, render as held or
	// with the old value, and wake nothing later; their own arrival wakes
	// the namespace again.
	informers, ok := opts.Payloads.(cache.Informers)
	for _, obj := range []client.Object{&appsv1.ControllerRevision{}, &corev1.Secret{}, &corev1.ConfigMap{}} {
		if !ok {
			break
		}
		inf, err := informers.GetInformer(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("getting %T informer: %w", obj, err)
		}
		onPayload := func(o any) {
			if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if m, ok := o.(metav1.Object); ok {
				s.wakeNamespace(m.GetNamespace())
			}
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    onPayload,
			UpdateFunc: func(_, o any) { onPayload(o) },
			DeleteFunc: onPayload,
		}); err != nil {
			return nil, err
		}
	}
	devices, err := mgr.GetCache().GetInformer(ctx, &mdmv1alpha1.Device{})
	if err != nil {
		return nil, fmt.Errorf("getting Device informer: %w", err)
	}
	conns, err := indexConnections(devices)
	if err != nil {
		return nil, err
	}
	if conns != nil {
		s.sweeper.conns = conns
	}
	if _, err := devices.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { s.arrivals.arrived(o.(*mdmv1alpha1.Device).UID) },
		UpdateFunc: func(old, o any) {
			d := o.(*mdmv1alpha1.Device)
			// A Device recreated under its name across a relist comes as
			// an update with a new UID.
			s.arrivals.arrived(d.UID)
			s.onDeviceChange(old.(*mdmv1alpha1.Device), d)
		},
		DeleteFunc: s.onDeviceDelete,
	}); err != nil {
		return nil, err
	}
	if err := mgr.Add(s); err != nil {
		return nil, err
	}
	return s, nil
}
