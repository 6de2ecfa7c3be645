package controllers

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// actionEvents queues DeviceActions as controller-runtime's own handler
// does, with two differences:
//
//   - An action not started yet is stamped as it arrives (see startOrder),
//     in the informer's one goroutine, before any worker can take it up.
//   - An unfinished action the manager finds at its start is queued at
//     normal priority, not the low one the initial list gets: after a
//     restart, commands people are waiting for must not queue behind every
//     result write of the actions already running. Finished actions, which
//     only wait for their TTL, keep the low priority.
type actionEvents struct {
	order    *startOrder
	progress *progressWrites
	now      func() time.Time
}

var _ handler.EventHandler = actionEvents{}

func (h actionEvents) Create(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	a, ok := e.Object.(*mdmv1alpha1.DeviceAction)
	if !ok {
		return
	}
	if !a.Status.Phase.Finished() && a.Status.StartTime == nil {
		h.order.arrive(a.UID, a.CreationTimestamp.Time, a.Namespace, h.now())
	}
	add(q, e.Object, e.IsInInitialList && a.Status.Phase.Finished())
}

func (h actionEvents) Update(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	// A resync, which changed nothing, waits behind real changes.
	add(q, e.ObjectNew, e.ObjectOld.GetResourceVersion() == e.ObjectNew.GetResourceVersion())
}

func (h actionEvents) Delete(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.order.forget(e.Object.GetUID())
	h.progress.forget(e.Object.GetUID())
	add(q, e.Object, false)
}

func (h actionEvents) Generic(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	add(q, e.Object, false)
}

// add queues the object, at low priority when asked and the queue has
// priorities.
func add(q workqueue.TypedRateLimitingInterface[reconcile.Request], o client.Object, low bool) {
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}}
	pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request])
	if !ok || !low {
		q.Add(req)
		return
	}
	pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(handler.LowPriority)}, req)
}

// actionLogger names the action in each reconcile's log lines, as
// controller-runtime does for the kind a controller is For.
func actionLogger(base logr.Logger) func(*reconcile.Request) logr.Logger {
	kind := mdmv1alpha1.GroupVersion.WithKind("DeviceAction")
	base = base.WithValues("controller", "deviceaction", "controllerGroup", kind.Group, "controllerKind", kind.Kind)
	return func(req *reconcile.Request) logr.Logger {
		if req == nil {
			return base
		}
		return base.WithValues(kind.Kind, klog.KRef(req.Namespace, req.Name), "namespace", req.Namespace, "name", req.Name)
	}
}
