package gateway_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/agent"
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
	e, err := testenv.Start(testenv.Options{})
	if err != nil {
		b.Skip(err)
	}
	defer func() { _ = e.Stop() }()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "push-"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		b.Fatal(err)
	}
	token := &mdmv1alpha1.EnrollmentToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "push"},
		Spec: mdmv1alpha1.EnrollmentTokenSpec{Platform: mdmv1alpha1.PlatformLinux, Perpetual: true}}
	if err := e.Client.Create(ctx, token); err != nil {
		b.Fatal(err)
	}
	secret := &corev1.Secret{}
	for deadline := time.Now().Add(30 * time.Second); e.Client.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "push-token"}, secret) != nil; {
		if time.Now().After(deadline) {
			b.Fatal("token not issued")
		}
		time.Sleep(50 * time.Millisecond)
	}
	state, err := agent.LoadState(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	dev := &agent.Simulated{Serial: "PUSH", PlatformName: "Linux"}
	a := agent.New(agent.Options{Gateway: e.GatewayAddr, Token: string(secret.Data["token"]), Trust: agent.Trust{CABundle: e.CABundle},
		Heartbeat: time.Hour}, state, dev, logr.Discard())
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = a.Run(runCtx) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		d := &mdmv1alpha1.Device{}
		if e.Client.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "push"}, d) == nil && d.Status.LastSeen != nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("agent did not connect")
		}
	}

	var push, write []time.Duration
	i := 0
	for b.Loop() {
		act := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: fmt.Sprintf("sync-%d", i)},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionSync, Devices: []string{"push"}}}
		i++
		if err := e.Client.Create(ctx, act); err != nil {
			b.Fatal(err)
		}
		now := metav1.Now()
		act.Status = mdmv1alpha1.DeviceActionStatus{Phase: mdmv1alpha1.ActionRunning, StartTime: &now,
			Devices: []mdmv1alpha1.DeviceResult{{Name: "push", Phase: mdmv1alpha1.CommandQueued, QueuedAt: &now}}}
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
