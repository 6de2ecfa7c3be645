package scale

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/agent"
	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// fleetLabel marks the Devices of the simulated fleet, so that one
// selector names them all.
const fleetLabel = "scale.kubemdm.io/fleet"

// fleet is the simulated devices, running in this process.
type fleet struct {
	ns      string
	dir     string
	devices *agent.Fleet
	cancel  context.CancelFunc
	done    chan []error
}

// token creates a perpetual Linux token whose devices carry fleetLabel and
// returns its value and the gateway CA bundle, as a device receives them.
func (h *Harness) token(ctx context.Context, ns, name string) (value string, ca []byte, err error) {
	t := &mdmv1alpha1.EnrollmentToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: mdmv1alpha1.EnrollmentTokenSpec{Platform: mdmv1alpha1.PlatformLinux, Perpetual: true,
			DeviceTemplate: &mdmv1alpha1.DeviceTemplate{Labels: map[string]string{fleetLabel: name}}},
	}
	if err := h.client.Create(ctx, t); err != nil {
		return "", nil, err
	}
	secret := &corev1.Secret{}
	err = poll(ctx, time.Minute, func() (bool, error) {
		if err := h.client.Get(ctx, client.ObjectKeyFromObject(t), t); err != nil || t.Status.SecretRef == nil {
			return false, err
		}
		err := h.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: t.Status.SecretRef.Name}, secret)
		return err == nil, client.IgnoreNotFound(err)
	})
	if err != nil {
		return "", nil, fmt.Errorf("waiting for token %s's Secret: %w", name, err)
	}
	return string(secret.Data[mdmv1alpha1.TokenSecretKey]), secret.Data[mdmv1alpha1.TokenSecretCAKey], nil
}

// stateDir keeps the devices' state in memory where the machine allows:
// the agents sync their journals, and a disk's syncs would time the disk.
func (h *Harness) stateDir() (string, error) {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return os.MkdirTemp("/dev/shm", "kubemdm-scale-")
	}
	return os.MkdirTemp(h.dir, "devices-")
}

// newFleet prepares n simulated devices that enroll with the token value.
func (h *Harness) newFleet(ns, token string, ca []byte, n int) (*fleet, error) {
	dir, err := h.stateDir()
	if err != nil {
		return nil, err
	}
	devices, err := agent.NewFleet(agent.FleetOptions{
		Options: agent.Options{Gateway: h.gatewayAddr, Token: token, Trust: agent.Trust{CABundle: ca},
			Heartbeat: h.profile.Heartbeat},
		StateDir: dir, Size: n, Platform: "Linux", Prefix: "SCALE",
	}, h.agentLog)
	if err != nil {
		return nil, err
	}
	return &fleet{ns: ns, dir: dir, devices: devices, done: make(chan []error, 1)}, nil
}

// run starts every agent at once.
func (f *fleet) run() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.done <- f.devices.Run(ctx, 0) }()
}

// stop stops the agents and returns the errors of those that had stopped
// on their own.
func (f *fleet) stop() []error {
	defer os.RemoveAll(f.dir)
	if f.cancel == nil {
		return nil
	}
	f.cancel()
	f.cancel = nil
	return <-f.done
}

func (f *fleet) heartbeats() uint64 {
	var n uint64
	for _, a := range f.devices.Agents {
		n += a.Heartbeats()
	}
	return n
}

// sessions is how many streams each agent has opened so far.
func (f *fleet) sessions() []uint64 {
	out := make([]uint64, len(f.devices.Agents))
	for i, a := range f.devices.Agents {
		out[i] = a.Sessions()
	}
	return out
}

// reconnected counts the agents that opened a stream since before.
func (f *fleet) reconnected(before []uint64) int {
	n := 0
	for i, a := range f.devices.Agents {
		if a.Sessions() > before[i] {
			n++
		}
	}
	return n
}

// received counts the devices holding a configuration named name.
func (f *fleet) received(name string) int {
	n := 0
	for _, d := range f.devices.Devices {
		if slices.ContainsFunc(d.Config().GetConfigurations(), func(c *agentv1.Configuration) bool { return c.GetName() == name }) {
			n++
		}
	}
	return n
}

// liveBytes is the heap this process has allocated and the stacks it
// uses, after a collection.
func liveBytes() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse)
}

// deviceCounter follows the Devices of a namespace through an informer,
// which lists again and watches again whenever its watch ends, and counts
// those a condition holds for, and those each of its stages holds for.
type deviceCounter struct {
	mu     sync.Mutex
	stages []*deviceStage
	stop   func()
}

// deviceStage is one condition a deviceCounter counts Devices by.
type deviceStage struct {
	name  string
	when  func(*mdmv1alpha1.Device) bool
	match map[string]bool
	count int
}

func (h *Harness) countDevices(ctx context.Context, ns string, when func(*mdmv1alpha1.Device) bool, stages ...deviceStage) (*deviceCounter, error) {
	return h.followDevices(ctx, ns, nil, when, stages...)
}

// followDevices is countDevices that also tallies each Device's writers
// into writers, when not nil.
func (h *Harness) followDevices(ctx context.Context, ns string, writers *writerTally, when func(*mdmv1alpha1.Device) bool, stages ...deviceStage) (*deviceCounter, error) {
	c := &deviceCounter{stages: []*deviceStage{{when: when, match: map[string]bool{}}}}
	for _, s := range stages {
		c.stages = append(c.stages, &deviceStage{name: s.name, when: s.when, match: map[string]bool{}})
	}
	opts := cache.Options{Scheme: h.scheme, DefaultNamespaces: map[string]cache.Config{ns: {}}}
	if writers == nil {
		// Only the tally reads them; 2 KiB per Device.
		opts.DefaultTransform = cache.TransformStripManagedFields()
	}
	informers, err := cache.New(h.cfg, opts)
	if err != nil {
		return nil, err
	}
	informer, err := informers.GetInformer(ctx, &mdmv1alpha1.Device{})
	if err != nil {
		return nil, err
	}
	observe := func(obj any, deleted bool) {
		d, ok := obj.(*mdmv1alpha1.Device)
		if !ok {
			if tomb, isTomb := obj.(toolscache.DeletedFinalStateUnknown); isTomb {
				d, ok = tomb.Obj.(*mdmv1alpha1.Device)
			}
			if !ok {
				return
			}
			deleted = true
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, s := range c.stages {
			now := !deleted && s.when(d)
			if now != s.match[d.Name] {
				s.match[d.Name] = now
				if now {
					s.count++
				} else {
					s.count--
				}
			}
		}
	}
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if d, ok := obj.(*mdmv1alpha1.Device); ok && writers != nil {
				writers.added(d)
			}
			observe(obj, false)
		},
		UpdateFunc: func(old, obj any) {
			if d, ok := obj.(*mdmv1alpha1.Device); ok && writers != nil {
				if o, ok := old.(*mdmv1alpha1.Device); ok {
					writers.updated(o, d)
				}
			}
			observe(obj, false)
		},
		DeleteFunc: func(obj any) { observe(obj, true) },
	}); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	c.stop = cancel
	go func() { _ = informers.Start(runCtx) }()
	if !informers.WaitForCacheSync(runCtx) {
		cancel()
		return nil, fmt.Errorf("the Device informer of %s did not sync", ns)
	}
	return c, nil
}

func (c *deviceCounter) value() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stages[0].count
}

// matching is the names of the Devices stage holds for now.
func (c *deviceCounter) matching(stage string) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]bool{}
	for _, s := range c.stages {
		if s.name != stage {
			continue
		}
		for name, ok := range s.match {
			if ok {
				out[name] = true
			}
		}
	}
	return out
}

// note adds each stage's count to p.
func (c *deviceCounter) note(p *progress, at time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.stages[1:] {
		p.count(at, s.name, s.count)
	}
}

// await waits until want Devices match, and returns when they did.
func (c *deviceCounter) await(ctx context.Context, want int, timeout time.Duration) (time.Time, error) {
	err := poll(ctx, timeout, func() (bool, error) { return c.value() >= want, nil })
	c.mu.Lock()
	var missing []string
	for name, ok := range c.stages[0].match {
		if !ok && len(missing) < 5 {
			missing = append(missing, name)
		}
	}
	c.mu.Unlock()
	if err != nil {
		return time.Time{}, fmt.Errorf("%d of %d Devices (not: %v): %w", c.value(), want, missing, err)
	}
	return time.Now(), nil
}

func enrolledAndConnected(d *mdmv1alpha1.Device) bool {
	return meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionEnrolled) &&
		meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected)
}

// poll calls done every 50ms until it returns true, fails or timeout passes.
func poll(ctx context.Context, timeout time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// agentLogger writes the simulated agents' logs, reconnects and their
// errors included, to SCALE_AGENT_LOG when it names a file: what a storm
// looked like from the devices.
func agentLogger(path string) (logr.Logger, func(), error) {
	if path == "" {
		return logr.Discard(), func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return logr.Discard(), nil, err
	}
	var mu sync.Mutex
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(f, "%s %s %s\n", time.Now().Format(time.StampMilli), prefix, args)
	}, funcr.Options{Verbosity: 1})
	return log, func() { _ = f.Close() }, nil
}
