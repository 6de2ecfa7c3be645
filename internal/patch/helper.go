// Package patch writes a reconciler's changes back in one deferred step, in the
// shape of cluster-api's util/patch: the status through the status
// subresource and the finalizers through the main resource, each only when
// it changed, and guarded by the resourceVersion the reconciler read or, for
// the second of the two, the one its first made.
//
// Controllers never write spec, labels or annotations through this helper,
// which is what keeps GitOps tools the only owners of those fields.
package patch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Helper remembers an object as it was read.
type Helper struct {
	before client.Object
	// superseded, when set, records the version between a status and a
	// finalizer write (see Superseded.NewHelper).
	superseded *Superseded
}

// NewHelper snapshots obj; call it right after reading obj.
func NewHelper(obj client.Object) *Helper {
	return &Helper{before: obj.DeepCopyObject().(client.Object)}
}

// Before is the object as NewHelper saw it; callers must not change it.
func (h *Helper) Before() client.Object { return h.before }

// Patch writes what changed in obj since NewHelper. A NotFound answer is not
// an error: removing the last finalizer may already have deleted the object.
//
// A finalizer added goes first, so that no status it guards (an action's
// rows, which the gateway acts on) is ever stored without it; a finalizer
// removed goes last, after the status that ends what it guarded. The first
// write is guarded by the version NewHelper saw, the second by the one the
// first made. Each write reads the answer into obj: after a failed second
// write, obj holds what the first stored, not this pass's status.
func (h *Helper) Patch(ctx context.Context, c client.Client, obj client.Object) error {
	desiredFinalizers := slices.Clone(obj.GetFinalizers())
	keepTransitionTimes(h.before, obj)
	// Taken before any write, which replaces obj's status with the stored one.
	diff, err := statusDiff(h.before, obj)
	if err != nil {
		return err
	}
	finalizersChanged := !slices.Equal(h.before.GetFinalizers(), desiredFinalizers)
	guard := h.before.GetResourceVersion()
	// Each reports whether the object is gone.
	writeFinalizers := func() (bool, error) {
		err := patchFinalizers(ctx, c, obj, guard, desiredFinalizers)
		if err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("patching finalizers: %w", err)
		}
		return err != nil, nil
	}
	writeStatus := func() (bool, error) {
		body, err := guardedStatus(diff, guard)
		if err != nil {
			return false, err
		}
		err = c.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, body))
		if err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("patching status: %w", err)
		}
		return err != nil, nil
	}
	switch {
	case diff != nil && finalizersChanged:
		first, second := writeStatus, writeFinalizers
		if onlyAdded(h.before.GetFinalizers(), desiredFinalizers) {
			first, second = writeFinalizers, writeStatus
		}
		if gone, err := first(); gone || err != nil {
			return err
		}
		guard = obj.GetResourceVersion()
		if gone, err := second(); gone || err != nil {
			return err
		}
		if h.superseded != nil && obj.GetResourceVersion() != guard {
			h.superseded.record(obj.GetUID(), guard)
		}
		return nil
	case diff != nil:
		_, err := writeStatus()
		return err
	case finalizersChanged:
		_, err := writeFinalizers()
		return err
	}
	return nil
}

// onlyAdded reports whether after holds every finalizer of before.
func onlyAdded(before, after []string) bool {
	for _, f := range before {
		if !slices.Contains(after, f) {
			return false
		}
	}
	return true
}

func patchFinalizers(ctx context.Context, c client.Client, obj client.Object, resourceVersion string, finalizers []string) error {
	if finalizers == nil {
		finalizers = []string{}
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"finalizers":      finalizers,
		"resourceVersion": resourceVersion,
	}})
	if err != nil {
		return err
	}
	return c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, body))
}

// ConflictRetry is how soon a reconcile that lost a write race looks again.
const ConflictRetry = 50 * time.Millisecond

// Finish is Patch for a reconciler's deferred call: it folds the outcome into
// the reconcile's result. A conflict means another writer (the gateway, as a
// rule) changed the object meanwhile, an ordinary race answered by a quick
// requeue rather than an error. Finish reports whether the write landed.
func (h *Helper) Finish(ctx context.Context, c client.Client, obj client.Object, res *reconcile.Result, retErr *error) bool {
	err := h.Patch(ctx, c, obj)
	switch {
	case err == nil:
		return true
	case apierrors.IsConflict(err) && *retErr == nil:
		*res = reconcile.Result{RequeueAfter: ConflictRetry}
	default:
		*retErr = errors.Join(*retErr, fmt.Errorf("patching %s: %w", klog.KObj(obj), err))
	}
	return false
}

// conditioned is an object whose status holds conditions.
type conditioned interface {
	GetConditions() *[]metav1.Condition
}

// keepTransitionTimes gives every condition that has the status it had when
// read its lastTransitionTime back. A reconcile may remove a condition and
// set it again on the way (settling, then finding a rollout still going);
// that is no transition, and writing a new time for it would cost a status
// write on every pass.
func keepTransitionTimes(before, after client.Object) {
	b, ok := before.(conditioned)
	a, ok2 := after.(conditioned)
	if !ok || !ok2 {
		return
	}
	was := *b.GetConditions()
	conds := *a.GetConditions()
	for i := range conds {
		if old := meta.FindStatusCondition(was, conds[i].Type); old != nil && old.Status == conds[i].Status {
			conds[i].LastTransitionTime = old.LastTransitionTime
		}
	}
	// In the order they were read, new ones last, so that a condition set
	// again is not a move either.
	at := func(typ string) int {
		if i := slices.IndexFunc(was, func(c metav1.Condition) bool { return c.Type == typ }); i >= 0 {
			return i
		}
		return len(was)
	}
	slices.SortStableFunc(conds, func(x, y metav1.Condition) int { return at(x.Type) - at(y.Type) })
}
