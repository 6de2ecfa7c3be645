package gateway_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/testenv"
)

// writesIn counts the manager's writes by namespace: a test that wants none
// of its own is not failed by another test's devices settling meanwhile.
var writesIn sync.Map // namespace → *atomic.Int64

// countWrite counts one write of o.
func countWrite(total *atomic.Int64, o any) {
	total.Add(1)
	if n, ok := o.(interface{ GetNamespace() string }); ok && n.GetNamespace() != "" {
		c, _ := writesIn.LoadOrStore(n.GetNamespace(), &atomic.Int64{})
		c.(*atomic.Int64).Add(1)
	}
}

// namespaceWrites is how many writes the manager sent for objects in ns.
func namespaceWrites(ns string) int64 {
	if c, ok := writesIn.Load(ns); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

// writeCounter counts the manager's writes to the apiserver.
type writeCounter struct {
	client.Client
	writes *atomic.Int64
}

func (w writeCounter) Create(ctx context.Context, o client.Object, opts ...client.CreateOption) error {
	countWrite(w.writes, o)
	return w.Client.Create(ctx, o, opts...)
}

func (w writeCounter) Patch(ctx context.Context, o client.Object, p client.Patch, opts ...client.PatchOption) error {
	countWrite(w.writes, o)
	return w.Client.Patch(ctx, o, p, opts...)
}

func (w writeCounter) Update(ctx context.Context, o client.Object, opts ...client.UpdateOption) error {
	countWrite(w.writes, o)
	return w.Client.Update(ctx, o, opts...)
}

func (w writeCounter) Status() client.SubResourceWriter {
	return statusCounter{w.Client.Status(), w.writes}
}

type statusCounter struct {
	client.SubResourceWriter
	writes *atomic.Int64
}

func (s statusCounter) Patch(ctx context.Context, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
	countWrite(s.writes, o)
	return s.SubResourceWriter.Patch(ctx, o, p, opts...)
}

func (s statusCounter) Update(ctx context.Context, o client.Object, opts ...client.SubResourceUpdateOption) error {
	countWrite(s.writes, o)
	return s.SubResourceWriter.Update(ctx, o, opts...)
}

func (s statusCounter) Apply(ctx context.Context, o runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	countWrite(s.writes, o)
	return s.SubResourceWriter.Apply(ctx, o, opts...)
}

// BenchmarkHeartbeat measures ReportStatus heartbeats per second through the
// gateway over mTLS, and the apiserver writes they cause (the design's
// budget is zero per heartbeat). Run with:
//
//	KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./gateway -run '^$' -bench Heartbeat
func BenchmarkHeartbeat(b *testing.B) {
	writes := &atomic.Int64{}
	bd := startBenchDevice(b, testenv.Options{Wrap: func(c client.Client) client.Client { return writeCounter{c, writes} }}, "BENCH")
	e, ctx := bd.env, context.Background()
	c, done, err := bd.agent.Client()
	if err != nil {
		b.Fatal(err)
	}
	defer done()
	facts := &agentv1.Facts{DeviceInfo: &agentv1.DeviceInfo{Model: "Sim"}}
	// The first report writes the facts; the ones measured repeat them.
	if _, err := c.ReportStatus(ctx, connect.NewRequest(&agentv1.ReportStatusRequest{Facts: facts})); err != nil {
		b.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let the cache catch up and presence flush
	writes.Store(0)
	// b.Loop runs this function once, so the control plane starts once.
	n := 0
	start := time.Now()
	for b.Loop() {
		if _, err := c.ReportStatus(ctx, connect.NewRequest(&agentv1.ReportStatusRequest{Facts: facts})); err != nil {
			b.Fatal(err)
		}
		n++
	}
	rate := float64(n) / time.Since(start).Seconds()
	b.ReportMetric(rate, "heartbeats/s")
	b.ReportMetric(float64(writes.Load())/float64(n), "writes/heartbeat")

	// Baseline from the same run: a design that wrote lastSeen on every
	// heartbeat could go no faster than the apiserver takes status writes.
	device := &mdmv1alpha1.Device{}
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: bd.ns, Name: bd.name}, device); err != nil {
		b.Fatal(err)
	}
	const baselineWrites = 200
	baseStart := time.Now()
	for i := range baselineWrites {
		before := device.DeepCopy()
		device.Status.LastSeen = &metav1.Time{Time: baseStart.Add(time.Duration(i) * time.Second)}
		if err := e.Client.Status().Patch(ctx, device, client.MergeFrom(before)); err != nil {
			b.Fatal(err)
		}
	}
	baseline := baselineWrites / time.Since(baseStart).Seconds()
	b.ReportMetric(rate/baseline, "x-write-per-beat")
}
