package patch

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// BenchmarkStatusPatch builds the status patch of a 1,000-row DeviceAction
// in which one row completed, the write a follow pass makes after each
// batch of results. It reports the time against a baseline measured in the
// same run: converting both objects to find whether the status changed,
// then diffing the two whole objects (controller-runtime's MergeFrom), as
// Patch did before.
func BenchmarkStatusPatch(b *testing.B) {
	at := metav1.NewTime(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	read := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: "fleet", Name: "sync-7bfs2", ResourceVersion: "42"}}
	read.Status.Phase, read.Status.StartTime = mdmv1alpha1.ActionRunning, &at
	for i := range mdmv1alpha1.MaxSelectorMatches {
		read.Status.Devices = append(read.Status.Devices, mdmv1alpha1.DeviceResult{
			Name: fmt.Sprintf("device-%05d", i), DeviceUID: "6f1c2a9e-0d4b-4c8a-9d2e-7b5f3a1c8e0d",
			Phase: mdmv1alpha1.CommandDelivered, QueuedAt: &at, DeliveredAt: &at,
		})
	}
	after := read.DeepCopy()
	after.Status.Devices[500].Phase, after.Status.Devices[500].CompletedAt = mdmv1alpha1.CommandSucceeded, &at

	wholeObject := func() {
		b, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(read)
		a, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(after)
		if !equality.Semantic.DeepEqual(b["status"], a["status"]) {
			if _, err := client.MergeFromWithOptions(read, client.MergeFromWithOptimisticLock{}).Data(after); err != nil {
				panic(err)
			}
		}
	}
	statusFields := func() {
		if body, err := statusPatch(read, after); err != nil || body == nil {
			panic(fmt.Sprint(body, err))
		}
	}
	var base, this time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		wholeObject()
		t1 := time.Now()
		statusFields()
		base, this = base+t1.Sub(t0), this+time.Since(t1)
	}
	b.ReportMetric(float64(this)/float64(base), "ratio-to-whole-object-diff")
}
