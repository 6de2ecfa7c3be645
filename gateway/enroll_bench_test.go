package gateway_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/agent"
	"github.com/kubemdm/kubemdm/internal/testenv"
)

// BenchmarkEnroll measures enrollments one after the other through the
// gateway on one perpetual token, each a new device with its own key and
// TLS connection, and the apiserver writes the manager makes for them until
// the Enroll call answers. The ratio is to ConfigMap creates one after the
// other on the same apiserver in the same run. Run with:
//
//	KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./gateway -run '^$' -bench Enroll
func BenchmarkEnroll(b *testing.B) {
	writes := &atomic.Int64{}
	bd := startBenchDevice(b, testenv.Options{Wrap: func(c client.Client) client.Client { return writeCounter{c, writes} }}, "BENCH")
	e, ctx := bd.env, context.Background()
	dir := b.TempDir()
	time.Sleep(500 * time.Millisecond) // let the first device's writes land
	writes.Store(0)
	n := 0
	start := time.Now()
	for b.Loop() {
		serial := fmt.Sprintf("ENROLL-%06d", n)
		state, err := agent.LoadState(filepath.Join(dir, serial))
		if err != nil {
			b.Fatal(err)
		}
		a := agent.New(agent.Options{Gateway: e.GatewayAddr, Token: bd.token, Trust: agent.Trust{CABundle: e.CABundle}},
			state, &agent.Simulated{Serial: serial, PlatformName: "Linux"}, logr.Discard())
		if err := a.Enroll(ctx); err != nil {
			b.Fatal(err)
		}
		n++
	}
	rate := float64(n) / time.Since(start).Seconds()
	b.ReportMetric(rate, "enrollments/s")
	// The controllers' writes for these Devices (their conditions) may land
	// after the loop: counted up to now, they are the gateway's part.
	b.ReportMetric(float64(writes.Load())/float64(n), "writes/enrollment")

	const baselineCreates = 200
	baseStart := time.Now()
	for i := range baselineCreates {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: bd.ns, Name: fmt.Sprintf("baseline-%04d", i)}}
		if err := e.Client.Create(ctx, cm); err != nil {
			b.Fatal(err)
		}
	}
	baseline := baselineCreates / time.Since(baseStart).Seconds()
	b.ReportMetric(rate/baseline, "x-configmap-create")
}
