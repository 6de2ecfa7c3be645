package gateway

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// failingStatus fails the next n status writes, as an apiserver that is
// briefly unreachable would.
type failingStatus struct {
	client.Client
	failures *atomic.Int32
}

func (f failingStatus) Status() client.SubResourceWriter {
	return failingStatusWriter{f.Client.Status(), f.failures}
}

type failingStatusWriter struct {
	client.SubResourceWriter
	failures *atomic.Int32
}

func (w failingStatusWriter) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	if w.failures.Add(-1) >= 0 {
		return errors.New("injected: the apiserver is unreachable")
	}
	return w.SubResourceWriter.Apply(ctx, obj, opts...)
}

func (w failingStatusWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	if w.failures.Add(-1) >= 0 {
		return errors.New("injected: the apiserver is unreachable")
	}
	return w.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

// errorLog records the messages logged at error level.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) logger() logr.Logger { return logr.New(&errorSink{log: l}) }

type errorSink struct{ log *errorLog }

func (s *errorSink) Init(logr.RuntimeInfo)          {}
func (s *errorSink) Enabled(int) bool               { return true }
func (s *errorSink) Info(int, string, ...any)       {}
func (s *errorSink) WithValues(...any) logr.LogSink { return s }
func (s *errorSink) WithName(string) logr.LogSink   { return s }
func (s *errorSink) Error(_ error, msg string, _ ...any) {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	s.log.msgs = append(s.log.msgs, msg)
}

func (l *errorLog) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

func startControlPlane(t *testing.T) client.Client {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set; run make test")
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = mdmv1alpha1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func connectedStatus(t *testing.T, c client.Client, d *mdmv1alpha1.Device) metav1.ConditionStatus {
	t.Helper()
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(d), d); err != nil {
		t.Fatal(err)
	}
	if cond := meta.FindStatusCondition(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected); cond != nil {
		return cond.Status
	}
	return ""
}

func newTestDevice(t *testing.T, c client.Client, name string) *mdmv1alpha1.Device {
	t.Helper()
	d := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformLinux}}
	if err := c.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPresence(t *testing.T) {
	c := startControlPlane(t)
	ctx := context.Background()
	// openWritten opens a stream of d on p and wants it written.
	openWritten := func(t *testing.T, p *presence, d *mdmv1alpha1.Device) {
		t.Helper()
		p.connected(client.ObjectKeyFromObject(d), d.UID, false)
		p.flush(ctx)
		if got := connectedStatus(t, c, d); got != metav1.ConditionTrue {
			t.Fatalf("Connected is %q after the stream opened, want True", got)
		}
	}

	t.Run("a disconnect whose write fails is retried, not lost", func(t *testing.T) {
		failures := &atomic.Int32{}
		log := &errorLog{}
		p := newPresence(failingStatus{c, failures}, c, log.logger(), "a", time.Hour, 0, time.Now)
		d := newTestDevice(t, c, "flaky-write")
		key := client.ObjectKeyFromObject(d)
		openWritten(t, p, d)
		failures.Store(1)
		p.disconnected(key, d.UID)
		p.flush(ctx)
		if got := connectedStatus(t, c, d); got != metav1.ConditionTrue {
			t.Fatalf("Connected is %q although the write failed", got)
		}
		p.flush(ctx)
		if got := connectedStatus(t, c, d); got != metav1.ConditionFalse {
			t.Fatalf("Connected is %q after the retry, want False: the disconnect was lost", got)
		}
		if len(log.errors()) != 1 {
			t.Errorf("want one error for the failed write, got %q", log.errors())
		}
		if _, held := p.devices[key]; held {
			t.Error("a disconnected device is still held after its disconnect was written")
		}
	})

	t.Run("an opening awaiting the agent's report is not written before it, unless there is nothing to report", func(t *testing.T) {
		p := newPresence(c, c, logr.Discard(), "a", time.Hour, 0, time.Now)
		d := newTestDevice(t, c, "awaits-report")
		key := client.ObjectKeyFromObject(d)
		// The writer may run at any moment after the stream opened: the
		// wait for the report is part of the opening.
		p.connected(key, d.UID, true)
		p.flush(ctx)
		if got := connectedStatus(t, c, d); got != "" {
			t.Fatalf("Connected is %q before the report came, want it written with the report", got)
		}
		if _, carried := p.takeOpening(key, d.UID); !carried {
			t.Fatal("the report found no opening to carry")
		}

		other := newTestDevice(t, c, "nothing-to-report")
		okey := client.ObjectKeyFromObject(other)
		p.connected(okey, other.UID, true)
		p.reportNotDue(okey, other.UID)
		p.flush(ctx)
		if got := connectedStatus(t, c, other); got != metav1.ConditionTrue {
			t.Fatalf("Connected is %q for a stream that sent nothing to report on, want True at once", got)
		}
	})

	t.Run("an opening waits with a report that waits its turn, and is written on its own if the report fails", func(t *testing.T) {
		now := time.Now()
		clock := func() time.Time { return now }
		p := newPresence(c, c, logr.Discard(), "a", time.Hour, 0, clock)
		d := newTestDevice(t, c, "report-queued")
		key := client.ObjectKeyFromObject(d)
		p.connected(key, d.UID, true)
		release := p.reportArriving(key, d.UID, now.Add(time.Minute))
		now = now.Add(2 * openingReportWait)
		p.flush(ctx)
		if got := connectedStatus(t, c, d); got != "" {
			t.Fatalf("Connected is %q while the report that carries it waits its turn", got)
		}
		release() // the report failed before it could carry the opening
		p.flush(ctx)
		if got := connectedStatus(t, c, d); got != metav1.ConditionTrue {
			t.Fatalf("Connected is %q after the report gave up the opening, want True", got)
		}
	})

	t.Run("a stream reopened on a Device shown connected here is not written again, until the Device shows it disconnected", func(t *testing.T) {
		before := newPresence(c, c, logr.Discard(), "a", time.Hour, 0, time.Now)
		d := newTestDevice(t, c, "reopened")
		key := client.ObjectKeyFromObject(d)
		openWritten(t, before, d)
		written := d.ResourceVersion

		// The replica restarts; the agent's stream opens on the Device as
		// the new process's cache has it.
		after := newPresence(c, c, logr.Discard(), "a", time.Hour, 0, time.Now)
		after.opened(d.DeepCopy(), false)
		after.flush(ctx)
		if connectedStatus(t, c, d); d.ResourceVersion != written {
			t.Fatalf("the reopened stream was written again (resourceVersion %s, was %s)", d.ResourceVersion, written)
		}
		if !after.holds(key) {
			t.Fatal("the restarted replica does not hold the reopened stream")
		}

		// A disconnect written since (by the process before, through the
		// cache's blind spot) is seen on the informer: the stream is
		// claimed again.
		before.disconnected(key, d.UID)
		before.flush(ctx)
		if got := connectedStatus(t, c, d); got != metav1.ConditionFalse {
			t.Fatalf("Connected is %q after the disconnect, want False", got)
		}
		after.observed(d.DeepCopy())
		after.flush(ctx)
		if got := connectedStatus(t, c, d); got != metav1.ConditionTrue {
			t.Fatalf("Connected is %q for a stream held here after the Device showed it disconnected, want True", got)
		}

		// Shown connected through another replica, the opening is written.
		other := newPresence(c, c, logr.Discard(), "b", time.Hour, 0, time.Now)
		other.opened(d.DeepCopy(), false)
		other.flush(ctx)
		if connectedStatus(t, c, d); d.Status.Connection == nil || d.Status.Connection.Gateway != "b" {
			t.Fatalf("the stream opened on replica b is shown on %+v", d.Status.Connection)
		}
	})

	t.Run("a deleted Device is forgotten without an error", func(t *testing.T) {
		log := &errorLog{}
		p := newPresence(c, c, log.logger(), "a", time.Hour, 0, time.Now)
		d := newTestDevice(t, c, "deleted-online")
		key := client.ObjectKeyFromObject(d)
		p.connected(key, d.UID, false)
		p.flush(ctx)
		if err := c.Delete(ctx, d); err != nil {
			t.Fatal(err)
		}
		p.disconnected(key, d.UID)
		p.flush(ctx)
		if errs := log.errors(); len(errs) > 0 {
			t.Errorf("deleting an online Device logged errors: %q", errs)
		}
		if _, held := p.devices[key]; held {
			t.Error("the deleted Device is still held")
		}
	})

}

// connected records a stream opening of a Device not shown connected here.
func (p *presence) connected(key types.NamespacedName, uid types.UID, reportDue bool) {
	p.change(key, uid, +1, reportDue, false)
}
