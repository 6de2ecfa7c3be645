package scale

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/testenv"
)

// Labels the harness puts on Devices: a batch of the registered ones, and
// a group of at most MaxSelectorMatches of the fleet for commands.
const (
	batchLabel = "scale.kubemdm.io/batch"
	groupLabel = "scale.kubemdm.io/group"
	batches    = 100
)

// registered creates the pre-registered Devices, waits until the manager
// settled each, then watches it stay quiet, and times the queries a
// platform team runs over them.
func (h *Harness) registered(ctx context.Context, r *Results) error {
	n := h.profile.Registered
	if n == 0 {
		return nil
	}
	ns, err := h.namespace(ctx, "registered-")
	if err != nil {
		return err
	}
	// Settled: the controller recorded this generation and a Ready condition.
	phased, err := h.countDevices(ctx, ns, func(d *mdmv1alpha1.Device) bool {
		return d.Status.ObservedGeneration == d.Generation && meta.FindStatusCondition(d.Status.Conditions, "Ready") != nil
	})
	if err != nil {
		return err
	}
	defer phased.stop()
	m, err := h.mark(ctx)
	if err != nil {
		return err
	}
	began := time.Now()
	err = h.createAll(ctx, n, func(i int) client.Object {
		return &mdmv1alpha1.Device{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("asset-%06d", i),
				Labels: map[string]string{batchLabel: fmt.Sprintf("b%02d", i%batches)}},
			Spec: mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformLinux, SerialNumber: fmt.Sprintf("ASSET%06d", i)},
		}
	})
	if err != nil {
		return err
	}
	h.logf("Created %d Devices in %s", n, time.Since(began).Round(time.Millisecond))
	// 10,000 settle in about two minutes on two cores; 100,000 in about
	// twenty, with the creates still running for the first eight.
	done, err := phased.await(ctx, n, max(10*time.Minute, time.Duration(n)*18*time.Millisecond))
	if err != nil {
		return err
	}
	r.Registered.Settle = done.Sub(began)
	// Whatever a reconcile wrote shows through the watch within moments;
	// a pause lets the last of them land before the count.
	time.Sleep(2 * time.Second)
	if r.Registered.Writes, err = h.managerWrites(ctx, m); err != nil {
		return err
	}
	h.logf("Settled in %s: %s", r.Registered.Settle.Round(time.Millisecond), r.Registered.Writes)

	if m, err = h.mark(ctx); err != nil {
		return err
	}
	pid := h.manager.Cmd.Process.Pid
	cpu0, err := testenv.CPU(pid)
	if err != nil {
		return err
	}
	time.Sleep(h.profile.Window)
	cpu1, err := testenv.CPU(pid)
	if err != nil {
		return err
	}
	r.Registered.QuietCPU = time.Duration(cpu1-cpu0) * 10 * time.Millisecond
	if r.Registered.QuietWrites, err = h.managerWrites(ctx, m); err != nil {
		return err
	}
	if r.Registered.RSS, err = h.manager.RSS(); err != nil {
		return err
	}

	list := &mdmv1alpha1.DeviceList{}
	began = time.Now()
	if err := h.client.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{batchLabel: "b07"}); err != nil {
		return err
	}
	r.Registered.LabelList = time.Since(began)
	r.Registered.Listed = len(list.Items)
	began = time.Now()
	if err := h.client.List(ctx, list, client.InNamespace(ns), client.MatchingFields{"spec.serialNumber": "ASSET000042"}); err != nil {
		return fmt.Errorf("listing by spec.serialNumber: %w", err)
	}
	r.Registered.FieldList = time.Since(began)
	if len(list.Items) != 1 {
		return fmt.Errorf("spec.serialNumber=ASSET000042 listed %d Devices, not 1", len(list.Items))
	}
	return nil
}

// enrollment starts every simulated device at once with one perpetual
// token and waits until each is Enrolled and Connected and the token has
// counted them.
func (h *Harness) enrollment(ctx context.Context, r *Results) (*fleet, error) {
	n := h.profile.Devices
	ns, err := h.namespace(ctx, "fleet-")
	if err != nil {
		return nil, err
	}
	const token = "storm"
	value, ca, err := h.token(ctx, ns, token)
	if err != nil {
		return nil, err
	}
	h.beforeFleet = liveBytes()
	f, err := h.newFleet(ns, value, ca, n)
	if err != nil {
		return nil, err
	}
	// Where the storm's time goes: when the Devices were created, shown
	// Enrolled by their controller and Connected by the gateway, by tenths.
	writers := newWriterTally()
	ready, err := h.followDevices(ctx, ns, writers, enrolledAndConnected,
		deviceStage{name: "created", when: func(*mdmv1alpha1.Device) bool { return true }},
		deviceStage{name: "enrolled", when: func(d *mdmv1alpha1.Device) bool {
			return meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionEnrolled)
		}},
		deviceStage{name: "connected", when: func(d *mdmv1alpha1.Device) bool {
			return meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected)
		}})
	if err != nil {
		return f, err
	}
	defer ready.stop()
	m, err := h.mark(ctx)
	if err != nil {
		return f, err
	}
	began := time.Now()
	go h.profileAPIServer(ctx, "enrollment", h.phaseProfileLength())
	f.run()
	steps := newProgress(n)
	progress := time.NewTicker(100 * time.Millisecond)
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		for {
			select {
			case <-progress.C:
				ready.note(steps, time.Since(began))
			case <-stopProgress:
				return
			}
		}
	}()
	// 10,000 devices take four to five minutes on two cores: about four
	// Device writes each, at what the apiserver sustains beside the TLS
	// of the fleet.
	done, err := ready.await(ctx, n, time.Minute+time.Duration(n)*50*time.Millisecond)
	progress.Stop()
	close(stopProgress)
	<-progressDone
	ready.note(steps, time.Since(began))
	h.logf("Enrollment storm seen: %s", steps)
	if err != nil {
		return f, err
	}
	r.Enrollment.Time = done.Sub(began)
	h.logf("%d devices Enrolled and Connected in %s", n, r.Enrollment.Time.Round(time.Millisecond))
	// The token's count is part of what an enrollment costs: wait for it.
	t := &mdmv1alpha1.EnrollmentToken{}
	err = poll(ctx, time.Minute, func() (bool, error) {
		err := h.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: token}, t)
		return err == nil && t.Status.EnrollmentCount >= int32(n), err
	})
	if err != nil {
		return f, fmt.Errorf("the token counted %d of %d enrollments: %w", t.Status.EnrollmentCount, n, err)
	}
	time.Sleep(2 * time.Second)
	if r.Enrollment.Writes, err = h.managerWrites(ctx, m); err != nil {
		return f, err
	}
	h.logf("Enrollment writes: %s", r.Enrollment.Writes)
	h.logf("Enrollment writes seen on the Devices: %s", writers)
	return f, h.group(ctx, ns)
}

// group labels the fleet's Devices in groups a selector may name.
func (h *Harness) group(ctx context.Context, ns string) error {
	list := &mdmv1alpha1.DeviceList{}
	if err := h.client.List(ctx, list, client.InNamespace(ns)); err != nil {
		return err
	}
	return forAll(len(list.Items), func(i int) error {
		d := &list.Items[i]
		p := client.MergeFrom(d.DeepCopy())
		d.Labels[groupLabel] = groupName(i / mdmv1alpha1.MaxSelectorMatches)
		return h.client.Patch(ctx, d, p)
	})
}

func groupName(i int) string { return fmt.Sprintf("g%02d", i) }

// idle watches the connected fleet heartbeat for Window.
func (h *Harness) idle(ctx context.Context, f *fleet, r *Results) error {
	m, err := h.mark(ctx)
	if err != nil {
		return err
	}
	beats := f.heartbeats()
	time.Sleep(h.profile.Window)
	r.Idle.Heartbeats = f.heartbeats() - beats
	if r.Idle.Writes, err = h.managerWrites(ctx, m); err != nil {
		return err
	}
	if r.Idle.RSS, err = h.manager.RSS(); err != nil {
		return err
	}
	// What the manager holds per stream: its live heap by allocation
	// site, the runtime's statistics (stacks, spans) and its goroutines.
	fetchManagerProfile(ctx, "heap", "idle.manager.heap.pprof")
	fetchManagerProfile(ctx, "heap?debug=1", "idle.manager.heap.txt")
	fetchManagerProfile(ctx, "goroutine", "idle.manager.goroutines.pprof")
	r.Idle.SimulatorBytes = (liveBytes() - h.beforeFleet) / int64(h.profile.Devices)
	h.logf("Idle: %d heartbeats, writes %s", r.Idle.Heartbeats, r.Idle.Writes)
	return nil
}

// fanOut locks the first group of the fleet with one DeviceAction.
func (h *Harness) fanOut(ctx context.Context, f *fleet, r *Results) error {
	m, err := h.mark(ctx)
	if err != nil {
		return err
	}
	began := time.Now()
	a, err := h.act(ctx, f.ns, mdmv1alpha1.ActionLock, groupName(0))
	if err != nil {
		return err
	}
	r.FanOut.Time = time.Since(began)
	r.FanOut.Devices = int(a.Status.Summary.Total)
	h.logf("Lock timeline: %s", timeline(a, began))
	time.Sleep(2 * time.Second)
	if r.FanOut.Writes, err = h.managerWrites(ctx, m); err != nil {
		return err
	}
	h.logf("Lock over %d devices in %s, writes %s", r.FanOut.Devices, r.FanOut.Time.Round(time.Millisecond), r.FanOut.Writes)
	return nil
}

// configure pushes a new Configuration to the whole fleet (it selects the
// token's label) and waits until every device reported it applied.
func (h *Harness) configure(ctx context.Context, f *fleet, r *Results) error {
	m, err := h.mark(ctx)
	if err != nil {
		return err
	}
	content := "pushed by the scale harness\n"
	cfg := &mdmv1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "fleet-motd"},
		Spec: mdmv1alpha1.ConfigurationSpec{
			DeviceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{mdmv1alpha1.LabelEnrollmentToken: "storm"}},
			Settings: mdmv1alpha1.ConfigurationSettings{
				Passcode: &mdmv1alpha1.PasscodeSettings{MinLength: ptr.To[int32](6)},
				Files:    []mdmv1alpha1.FileSetting{{Path: "/etc/motd", Content: &content}}}}}
	// Where the push's time goes: when the Configuration got its
	// revision, when the devices received it and their Devices show it
	// applied (by tenths), and when the Configuration counted them.
	reported, err := h.countDevices(ctx, f.ns, func(d *mdmv1alpha1.Device) bool {
		return slices.ContainsFunc(d.Status.Configurations, func(c mdmv1alpha1.DeviceConfigurationStatus) bool {
			return c.Name == cfg.Name && c.State == mdmv1alpha1.ConfigurationApplied
		})
	})
	if err != nil {
		return err
	}
	defer reported.stop()
	h.fetchAPIServer(ctx, "/metrics", "configure.apiserver.metrics-before.txt")
	h.fetchContention(ctx, "configure.apiserver.block-before.pprof")
	began := time.Now()
	go h.profileAPIServer(ctx, "configure", h.phaseProfileLength())
	// The reconnect that follows kills this manager: its profile is
	// waited for, or it would be asked again of the next one.
	profiled := make(chan struct{})
	go func() {
		defer close(profiled)
		profileManager(ctx, "configure", h.phaseProfileLength())
	}()
	defer func() { <-profiled }()
	if err := h.client.Create(ctx, cfg); err != nil {
		return err
	}
	want := int32(h.profile.Devices)
	steps := newProgress(int(want))
	lastCount := int32(-1)
	revised := false
	err = poll(ctx, time.Minute+time.Duration(want)*20*time.Millisecond, func() (bool, error) {
		at := time.Since(began)
		steps.count(at, "received", f.received(cfg.Name))
		if steps.done("received") && r.Configure.Delivered == 0 {
			r.Configure.Delivered = at
		}
		steps.count(at, "shown", reported.value())
		err := h.client.Get(ctx, client.ObjectKeyFromObject(cfg), cfg)
		if err == nil && !revised && cfg.Status.Revision != "" {
			revised = true
			steps.note(at, "revision")
		}
		if c := cfg.Status.Devices; err == nil && c != nil && c.Applied != lastCount {
			lastCount = c.Applied
			steps.note(at, fmt.Sprintf("counted=%d", c.Applied))
		}
		return err == nil && cfg.Status.Devices != nil && cfg.Status.Devices.Applied == want, err
	})
	h.logf("Configuration push seen: %s", steps)
	if err == nil && r.Configure.Delivered == 0 && f.received(cfg.Name) == int(want) {
		// The last device took it between the poll's two looks.
		r.Configure.Delivered = time.Since(began)
	}
	if err == nil && r.Configure.Delivered == 0 {
		err = fmt.Errorf("counted applied on every device, yet %d of %d simulated devices hold it", f.received(cfg.Name), want)
	}
	if err != nil {
		return fmt.Errorf("the Configuration counts %+v of %d devices: %w", cfg.Status.Devices, want, err)
	}
	r.Configure.Time = time.Since(began)
	h.fetchAPIServer(ctx, "/metrics", "configure.apiserver.metrics.txt")
	h.fetchContention(ctx, "configure.apiserver.block.pprof")
	time.Sleep(2 * time.Second)
	if r.Configure.Writes, err = h.managerWrites(ctx, m); err != nil {
		return err
	}
	h.logf("Configuration applied on %d devices in %s, writes %s", want, r.Configure.Time.Round(time.Millisecond), r.Configure.Writes)
	h.logDeviceSize(ctx, f.ns)
	return nil
}

// logDeviceSize logs what one Device of the fleet weighs as stored, and
// the part each field manager's tracking takes: every write and watch
// event carries it all.
func (h *Harness) logDeviceSize(ctx context.Context, ns string) {
	list := &mdmv1alpha1.DeviceList{}
	if err := h.client.List(ctx, list, client.InNamespace(ns), client.Limit(1)); err != nil || len(list.Items) == 0 {
		h.logf("No Device to weigh: %v", err)
		return
	}
	d := &list.Items[0]
	size := func(v any) int {
		b, _ := json.Marshal(v)
		return len(b)
	}
	var managers []string
	for _, m := range d.ManagedFields {
		managers = append(managers, fmt.Sprintf("%s/%s %dB", m.Manager, m.Subresource, size(m.FieldsV1)))
	}
	h.logf("A Device weighs %dB: spec %dB, status %dB (conditions %dB, configurations %dB), managedFields %dB (%s)",
		size(d), size(d.Spec), size(d.Status), size(d.Status.Conditions), size(d.Status.Configurations),
		size(d.ManagedFields), strings.Join(managers, ", "))
}

// reconnect kills the manager with SIGKILL, starts it again, and sends
// every device a command at once.
func (h *Harness) reconnect(ctx context.Context, f *fleet, r *Results) error {
	before := f.sessions()
	h.fetchAPIServer(ctx, "/metrics", "reconnect.apiserver.metrics-before.txt")
	h.manager.Kill()
	m, err := h.mark(ctx)
	if err != nil {
		return err
	}
	began := time.Now()
	// Where the time goes: the manager's start until its gateway listens,
	// the agents' reconnects by tenths, each group's Sync.
	var mu sync.Mutex
	steps := newProgress(h.profile.Devices)
	noteAt := func(event string) {
		mu.Lock()
		defer mu.Unlock()
		steps.note(time.Since(began), event)
	}
	watching, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	go func() {
		for watching.Err() == nil {
			mu.Lock()
			steps.count(time.Since(began), "reconnected", f.reconnected(before))
			mu.Unlock()
			select {
			case <-watching.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	// The commands are created as the manager restarts, as a person or a
	// pipeline would, not when this process, busy with ten thousand
	// reconnecting agents, sees the gateway listen.
	if err := h.launchManager(); err != nil {
		return err
	}
	listening := make(chan error, 1)
	go func() {
		err := h.awaitManager(ctx)
		if err == nil {
			noteAt("listening")
		}
		listening <- err
	}()
	go profileManager(watching, "reconnect", 30*time.Second)
	go h.profileAPIServer(watching, "reconnect", h.phaseProfileLength())
	go dumpManagerGoroutines(watching, "reconnect", began, 10*time.Second, 20*time.Second, 30*time.Second, 40*time.Second)
	groups := (h.profile.Devices + mdmv1alpha1.MaxSelectorMatches - 1) / mdmv1alpha1.MaxSelectorMatches
	errs := make(chan error, groups+1)
	go func() {
		if err := <-listening; err != nil {
			errs <- err
		}
	}()
	for g := range groups {
		go func() {
			_, err := h.act(ctx, f.ns, mdmv1alpha1.ActionSync, groupName(g))
			if err == nil {
				noteAt(fmt.Sprintf("synced=%s", groupName(g)))
			}
			errs <- err
		}()
	}
	for range groups {
		if err := <-errs; err != nil {
			return err
		}
	}
	r.Reconnect.Time = time.Since(began)
	stopWatching()
	mu.Lock()
	h.logf("Reconnect seen: %s", steps)
	mu.Unlock()
	time.Sleep(2 * time.Second)
	if r.Reconnect.Writes, err = h.managerWrites(ctx, m); err != nil {
		return err
	}
	if r.Reconnect.Handshakes, err = h.managerHandshakes(ctx); err != nil {
		return err
	}
	h.fetchAPIServer(ctx, "/metrics", "reconnect.apiserver.metrics.txt")
	h.logf("Reconnected and synced in %s, writes %s, TLS handshakes %v", r.Reconnect.Time.Round(time.Millisecond), r.Reconnect.Writes, r.Reconnect.Handshakes)
	return nil
}

// act runs action on the Devices of group and waits until every row
// succeeded.
func (h *Harness) act(ctx context.Context, ns string, action mdmv1alpha1.ActionType, group string) (*mdmv1alpha1.DeviceAction, error) {
	a := &mdmv1alpha1.DeviceAction{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: strings.ToLower(string(action)) + "-"},
		Spec: mdmv1alpha1.DeviceActionSpec{Action: action,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{groupLabel: group}}},
	}
	if err := h.client.Create(ctx, a); err != nil {
		return nil, err
	}
	if err := h.awaitFinished(ctx, a, 10*time.Minute); err != nil {
		return a, fmt.Errorf("%s %s: %w", action, a.Name, err)
	}
	if s := a.Status.Summary; a.Status.Phase != mdmv1alpha1.ActionSucceeded || s == nil || s.Succeeded != s.Total {
		return a, fmt.Errorf("%s %s ended %s: %+v", action, a.Name, a.Status.Phase, s)
	}
	return a, nil
}

// timeline says when, after began, an action was queued and its last
// command delivered and completed, to the second the rows record.
func timeline(a *mdmv1alpha1.DeviceAction, began time.Time) string {
	var delivered, completed time.Time
	for _, row := range a.Status.Devices {
		if row.DeliveredAt != nil && row.DeliveredAt.After(delivered) {
			delivered = row.DeliveredAt.Time
		}
		if row.CompletedAt != nil && row.CompletedAt.After(completed) {
			completed = row.CompletedAt.Time
		}
	}
	since := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Sub(began).Round(time.Second).String()
	}
	var queued, finished time.Time
	if a.Status.QueuedAt != nil {
		queued = a.Status.QueuedAt.Time
	}
	if a.Status.CompletionTime != nil {
		finished = a.Status.CompletionTime.Time
	}
	return fmt.Sprintf("queued %s, last delivered %s, last completed %s, finished %s", since(queued), since(delivered), since(completed), since(finished))
}

// progressStep is one write of an action as its watch shows it: when, how
// many rows were delivered and completed, and its phase.
func progressStep(a *mdmv1alpha1.DeviceAction, at time.Duration) string {
	var delivered, completed int
	for _, row := range a.Status.Devices {
		if row.DeliveredAt != nil {
			delivered++
		}
		if row.CompletedAt != nil {
			completed++
		}
	}
	return fmt.Sprintf("%s rows=%d delivered=%d completed=%d %s", at.Round(time.Millisecond), len(a.Status.Devices), delivered, completed, a.Status.Phase)
}

// awaitFinished waits until the action has finished and leaves it in a.
// It follows a watch rather than reading the action again and again: a
// thousand-row action is a large object, and reading it twenty times a
// second would load the apiserver under measurement. A slow read every
// few seconds backs the watch up, should it end: once a second, the ten
// Syncs of the reconnect read 600 thousand-row objects, a CPU-second of
// this process and more of the apiserver's.
func (h *Harness) awaitFinished(ctx context.Context, a *mdmv1alpha1.DeviceAction, timeout time.Duration) error {
	finished := make(chan *mdmv1alpha1.DeviceAction, 1)
	// Each write the watch shows, to the millisecond (the rows record
	// seconds): where the action's time goes.
	var (
		mu    sync.Mutex
		steps []string
	)
	began := time.Now()
	stop, err := testenv.Watch(ctx, h.cfg, h.scheme, &mdmv1alpha1.DeviceActionList{}, func(ev watch.Event) {
		got, ok := ev.Object.(*mdmv1alpha1.DeviceAction)
		if !ok {
			return
		}
		mu.Lock()
		steps = append(steps, progressStep(got, time.Since(began)))
		mu.Unlock()
		if got.Status.Phase.Finished() {
			select {
			case finished <- got:
			default:
			}
		}
	}, client.InNamespace(a.Namespace), client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", a.Name)})
	if err != nil {
		return err
	}
	defer func() {
		stop()
		mu.Lock()
		defer mu.Unlock()
		h.logf("%s %s writes seen: %s", a.Spec.Action, a.Name, strings.Join(steps, "; "))
	}()
	deadline := time.After(timeout)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case got := <-finished:
			got.DeepCopyInto(a)
			return nil
		case <-tick.C:
			if err := h.client.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
				return err
			}
			if a.Status.Phase.Finished() {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("not finished within %s (phase %q)", timeout, a.Status.Phase)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
