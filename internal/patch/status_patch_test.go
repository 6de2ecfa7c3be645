package patch

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/conditions"
)

// statusPatch is the status patch Patch sends first: the merge patch
// that turns before's status into after's, guarded by the resourceVersion
// before was read at, or nil when the status did not change.
func statusPatch(before, after client.Object) ([]byte, error) {
	diff, err := statusDiff(before, after)
	if diff == nil || err != nil {
		return nil, err
	}
	return guardedStatus(diff, before.GetResourceVersion())
}

// TestStatusPatch: the patch, applied to the object as read, gives exactly
// the status the reconcile left, whatever changed (a row, a field dropped
// by omitempty, a nested field removed, the rows all gone), carries the
// resourceVersion read, and touches nothing outside the status.
func TestStatusPatch(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	read := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "lock", ResourceVersion: "42", Finalizers: []string{"f"}}}
	read.Spec.Action = mdmv1alpha1.ActionLock
	read.Status.Phase, read.Status.StartTime = mdmv1alpha1.ActionRunning, &at
	read.Status.Summary = &mdmv1alpha1.ActionSummary{Total: 3, Queued: 2, Succeeded: 1}
	for i := range 3 {
		read.Status.Devices = append(read.Status.Devices, mdmv1alpha1.DeviceResult{Name: fmt.Sprintf("d%d", i), Phase: mdmv1alpha1.CommandQueued, QueuedAt: &at})
	}
	conditions.MarkReconciling(read, "Running", "2 of 3 devices still to answer")

	cases := []struct {
		name   string
		change func(a *mdmv1alpha1.DeviceAction)
	}{
		{"a row completed", func(a *mdmv1alpha1.DeviceAction) {
			a.Status.Devices[1].Phase, a.Status.Devices[1].CompletedAt = mdmv1alpha1.CommandSucceeded, &at
			a.Status.Summary.Queued, a.Status.Summary.Succeeded = 1, 2
		}},
		{"a field dropped by omitempty", func(a *mdmv1alpha1.DeviceAction) { a.Status.StartTime = nil }},
		{"a nested field gone", func(a *mdmv1alpha1.DeviceAction) { a.Status.Summary.Succeeded = 0 }},
		{"every row gone", func(a *mdmv1alpha1.DeviceAction) { a.Status.Devices = nil; a.Status.Summary = nil }},
		{"finished", func(a *mdmv1alpha1.DeviceAction) {
			a.Status.Phase, a.Status.CompletionTime = mdmv1alpha1.ActionSucceeded, &at
			conditions.MarkReady(a, "Succeeded", "done")
			a.Finalizers = nil // sent apart from the status
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			after := read.DeepCopy()
			tc.change(after)
			body, err := statusPatch(read, after)
			if err != nil || body == nil {
				t.Fatalf("status patch %s, %v", body, err)
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal(body, &top); err != nil {
				t.Fatal(err)
			}
			if len(top) != 2 || string(top["metadata"]) != `{"resourceVersion":"42"}` {
				t.Errorf("the patch reaches beyond the status and its guard: %s", body)
			}
			original, _ := json.Marshal(read)
			patched, err := jsonpatch.MergePatch(original, body)
			if err != nil {
				t.Fatal(err)
			}
			got := &mdmv1alpha1.DeviceAction{}
			if err := json.Unmarshal(patched, got); err != nil {
				t.Fatal(err)
			}
			// As the apiserver would store it: times to the second.
			want := &mdmv1alpha1.DeviceAction{}
			if b, err := json.Marshal(after); err != nil || json.Unmarshal(b, want) != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(got.Status, want.Status) {
				t.Errorf("patched status differs from the reconcile's:\n got %+v\nwant %+v\npatch %s", got.Status, want.Status, body)
			}
			if !equality.Semantic.DeepEqual(got.Finalizers, read.Finalizers) || !equality.Semantic.DeepEqual(got.Spec, read.Spec) {
				t.Errorf("the status patch changed more than the status: %s", body)
			}
		})
	}
	if body, err := statusPatch(read, read.DeepCopy()); err != nil || body != nil {
		t.Errorf("an unchanged status gives patch %s, %v", body, err)
	}
	// A time recomputed with a fraction of a second the JSON does not
	// hold changes nothing stored.
	fraction := read.DeepCopy()
	fraction.Status.StartTime = &metav1.Time{Time: at.Add(300 * time.Millisecond)}
	if body, err := statusPatch(read, fraction); err != nil || body != nil {
		t.Errorf("a change below the second gives patch %s, %v", body, err)
	}
}

// TestStatusPatchOfDevice: nested status objects of another kind are
// patched member by member, and a struct dropped by omitempty is removed.
func TestStatusPatchOfDevice(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	read := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: "d", ResourceVersion: "7"}}
	read.Status.Phase, read.Status.LastSeen = mdmv1alpha1.DeviceEnrolled, &at
	read.Status.Connection = &mdmv1alpha1.DeviceConnection{Gateway: "a"}
	read.Status.Unenrollment = &mdmv1alpha1.UnenrollmentStatus{Phase: mdmv1alpha1.UnenrollmentPending, RequestDate: &at}

	after := read.DeepCopy()
	after.Status.Connection = nil
	after.Status.Unenrollment.RequestDate = nil
	body, err := statusPatch(read, after)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"resourceVersion":"7"},"status":{"connection":null,"unenrollment":{"requestDate":null}}}`
	if string(body) != want {
		t.Errorf("patch %s, want %s", body, want)
	}
}
