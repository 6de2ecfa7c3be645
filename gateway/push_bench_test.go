package gateway_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/testenv"
)

// BenchmarkCommandPush measures how long a command takes from the instant
// its row is queued in a DeviceAction's status to the instant an online
// agent runs it, over the stream and with no polling. The baseline from the
// same run is one apiserver status write, the floor of any design that
// involves Kubernetes. Run with:
//
//	KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./gateway -run '^$' -bench CommandPush
func BenchmarkCommandPush(b *testing.B) {
	bd := startBenchDevice(b, testenv.Options{}, "PUSH")
	bd.run(b)
	e, ctx, dev := bd.env, context.Background(), bd.device

	var push, write []time.Duration
	i := 0
	for b.Loop() {
		act := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: bd.ns, Name: fmt.Sprintf("sync-%d", i)},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionSync, Devices: []string{bd.name}}}
		i++
		if err := e.Client.Create(ctx, act); err != nil {
			b.Fatal(err)
		}
		now := metav1.Now()
		act.Status = mdmv1alpha1.DeviceActionStatus{Phase: mdmv1alpha1.ActionRunning, StartTime: &now,
			Devices: []mdmv1alpha1.DeviceResult{{Name: bd.name, Phase: mdmv1alpha1.CommandQueued, QueuedAt: &now}}}
		before := len(dev.Executed())
		start := time.Now()
		if err := e.Client.Status().Update(ctx, act); err != nil {
			b.Fatal(err)
		}
		write = append(write, time.Since(start))
		for len(dev.Executed()) == before {
			time.Sleep(100 * time.Microsecond)
		}
		push = append(push, time.Since(start))
		// Let the result land before the next command, so that each push
		// is measured on its own.
		for {
			got := &mdmv1alpha1.DeviceAction{}
			if err := e.Client.Get(ctx, client.ObjectKeyFromObject(act), got); err == nil &&
				len(got.Status.Devices) == 1 && got.Status.Devices[0].Phase == mdmv1alpha1.CommandSucceeded {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	median := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	b.ReportMetric(float64(median(push).Microseconds())/1000, "push-ms-p50")
	b.ReportMetric(float64(median(push))/float64(median(write)), "x-one-status-write")
}
