package patch

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// TestFinalizerAddedFirstAndRemovedLast: a pass that adds a finalizer and
// writes a status stores the finalizer first, so that no status it guards
// (an action's rows, which the gateway acts on) exists without it; one that
// removes it writes the status first. The second write is guarded by the
// version the first made (the store refuses any other), and that version
// between the two is remembered as superseded.
func TestFinalizerAddedFirstAndRemovedLast(t *testing.T) {
	for _, tc := range []struct {
		name       string
		finalizers []string // stored before the pass
		want       []string // the writes, in order
	}{
		{name: "added", want: []string{"finalizers", "status"}},
		{name: "removed", finalizers: []string{mdmv1alpha1.Finalizer}, want: []string{"status", "finalizers"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var writes []string
			c, read := storedAction(t, tc.finalizers, interceptor.Funcs{
				Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
					writes = append(writes, "finalizers")
					return c.Patch(ctx, obj, p, opts...)
				},
				SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
					writes = append(writes, sub)
					return c.SubResource(sub).Patch(ctx, obj, p, opts...)
				},
			})
			var superseded Superseded
			h, _ := superseded.NewHelper(read)
			action := read.DeepCopy()
			if len(tc.finalizers) == 0 {
				action.Finalizers = []string{mdmv1alpha1.Finalizer}
			} else {
				action.Finalizers = nil
			}
			action.Status.Phase = mdmv1alpha1.ActionRunning
			action.Status.Devices = []mdmv1alpha1.DeviceResult{{Name: "phone", Phase: mdmv1alpha1.CommandQueued}}
			if err := h.Patch(ctx, c, action); err != nil {
				t.Fatalf("patch: %v (writes %v)", err, writes)
			}
			if !slices.Equal(writes, tc.want) {
				t.Errorf("writes %v, want %v", writes, tc.want)
			}
			stored := &mdmv1alpha1.DeviceAction{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "fleet", Name: "lock"}, stored); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(stored.Finalizers, action.Finalizers) || len(stored.Status.Devices) != 1 {
				t.Errorf("stored finalizers %v and %d rows, want %v and 1", stored.Finalizers, len(stored.Status.Devices), action.Finalizers)
			}
			between := stored.DeepCopy()
			between.ResourceVersion = previousVersion(t, stored.ResourceVersion)
			if !superseded.Stale(between) {
				t.Errorf("the version between the two writes, %s, is not remembered as superseded", between.ResourceVersion)
			}
		})
	}
}

// previousVersion is the fake store's version before rv: it counts writes.
func previousVersion(t *testing.T, rv string) string {
	t.Helper()
	n, err := strconv.Atoi(rv)
	if err != nil {
		t.Fatalf("resourceVersion %q is not a count", rv)
	}
	return strconv.Itoa(n - 1)
}

// TestStatusRefusedAfterTheFinalizer: when the status write after an added
// finalizer is refused, the finalizer stays, Patch reports the conflict (a
// requeue, whose pass finds the finalizer there and writes the status),
// and the stored version is not taken for one this pass replaced.
func TestStatusRefusedAfterTheFinalizer(t *testing.T) {
	ctx := context.Background()
	c, read := storedAction(t, nil, interceptor.Funcs{
		SubResourcePatch: func(context.Context, client.Client, string, client.Object, client.Patch, ...client.SubResourcePatchOption) error {
			return apierrors.NewConflict(mdmv1alpha1.GroupVersion.WithResource("deviceactions").GroupResource(), "lock", errors.New("changed"))
		},
	})
	var superseded Superseded
	h, _ := superseded.NewHelper(read)
	action := read.DeepCopy()
	action.Finalizers = []string{mdmv1alpha1.Finalizer}
	action.Status.Phase = mdmv1alpha1.ActionRunning
	if err := h.Patch(ctx, c, action); !apierrors.IsConflict(err) {
		t.Fatalf("patch: %v, want the status write's conflict", err)
	}
	stored := &mdmv1alpha1.DeviceAction{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "fleet", Name: "lock"}, stored); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stored.Finalizers, []string{mdmv1alpha1.Finalizer}) || stored.Status.Phase != "" {
		t.Errorf("stored finalizers %v and phase %q, want the finalizer alone", stored.Finalizers, stored.Status.Phase)
	}
	if superseded.Stale(stored) {
		t.Error("the version the finalizer write stored is taken for superseded; its reconcile, which writes the status, would be skipped")
	}
}

// storedAction is a store holding one Lock action with finalizers, whose
// writes go through funcs, and the action as read from it.
func storedAction(t *testing.T, finalizers []string, funcs interceptor.Funcs) (client.Client, *mdmv1alpha1.DeviceAction) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := mdmv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).
		WithStatusSubresource(&mdmv1alpha1.DeviceAction{}).
		WithObjects(&mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: "fleet", Name: "lock", UID: "a1", Finalizers: finalizers},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock, Devices: []string{"phone"}}}).
		WithInterceptorFuncs(funcs).Build()
	read := &mdmv1alpha1.DeviceAction{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "fleet", Name: "lock"}, read); err != nil {
		t.Fatal(err)
	}
	return c, read
}
