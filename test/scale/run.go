package scale

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// Profile is the size of a run.
type Profile struct {
	// Devices enroll at once with one perpetual token and stay connected.
	Devices int
	// Registered Device objects are created directly, pre-registered as a
	// fleet imported from an asset list, next to the connected ones.
	Registered int
	// Heartbeat is the simulated agents' heartbeat interval.
	Heartbeat time.Duration
	// Window is how long the idle and quiet phases watch.
	Window time.Duration
	// Dir holds the binaries, logs and kubeconfig of the run.
	Dir string
}

// Results are the figures of one run.
type Results struct {
	Profile  Profile
	Machine  string
	Baseline Baseline
	// ManagerIdleRSS is the manager's RSS before any device existed.
	ManagerIdleRSS int64

	Registered struct {
		// Settle is from the first create until every Device has a phase.
		Settle time.Duration
		// Writes are the manager's while the Devices settled.
		Writes Writes
		// QuietWrites and QuietCPU are the manager's over Window after.
		QuietWrites Writes
		QuietCPU    time.Duration
		RSS         int64
		// LabelList and FieldList time one list of all Devices of a
		// label and of a field value, answered by the apiserver.
		LabelList, FieldList time.Duration
		Listed               int
	}
	Enrollment struct {
		// Time is from the agents' start until every Device is Enrolled
		// and Connected.
		Time   time.Duration
		Writes Writes
	}
	Idle struct {
		Heartbeats uint64
		Writes     Writes
		// RSS is the manager's with the fleet connected.
		RSS int64
		// SimulatorBytes is this process's allocated heap and stacks per
		// connected simulated device.
		SimulatorBytes int64
	}
	FanOut struct {
		Devices int
		Time    time.Duration
		Writes  Writes
	}
	Configure struct {
		// Delivered is from the create of a Configuration selecting the
		// fleet until every simulated device holds it.
		Delivered time.Duration
		// Time is from the same create until the Configuration counts
		// every device applied: each device's report written to its
		// Device, and counted.
		Time   time.Duration
		Writes Writes
	}
	Reconnect struct {
		// Time is from the manager's restart until a command created then
		// reached every device and completed.
		Time   time.Duration
		Writes Writes
		// Handshakes are the restarted gateway's TLS handshakes handed to
		// its server: full ones (ok) and resumed sessions (resumed).
		Handshakes map[string]float64
	}
	Presence struct {
		// Devices were connected; Off of them were switched off while the
		// manager was down.
		Devices, Off int
		// ShownOff of those were shown disconnected afterwards; of the
		// others, WronglyOff were seen disconnected, and ShownOn were
		// connected throughout (their condition's transition time is from
		// before the kill).
		ShownOff, WronglyOff, ShownOn int
		// Time is from the restart until every switched-off device was
		// shown disconnected and every other had reconnected.
		Time   time.Duration
		Writes Writes
	}
}

// Run runs every phase of p and returns the figures.
func Run(ctx context.Context, p Profile, log io.Writer) (_ *Results, retErr error) {
	r := &Results{Profile: p, Machine: machine()}
	h, err := start(ctx, p, log)
	if h != nil {
		defer h.stop()
	}
	if err != nil {
		return r, err
	}
	defer func() {
		if retErr != nil && h.manager != nil {
			h.logf("The end of the manager's log:\n%s", h.manager.Tail(6000))
		}
	}()
	step := func(name string, fn func() error) error {
		h.logf("Phase %s", name)
		stop, err := profile(name)
		if err != nil {
			return err
		}
		err = fn()
		stop()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	if err := step("baseline", func() (err error) {
		r.Baseline, err = h.baseline(ctx, max(p.Devices, 300), 200)
		return err
	}); err != nil {
		return r, err
	}
	// The manager started before the baseline; what it holds now is its
	// cost with no device at all.
	if r.ManagerIdleRSS, err = h.manager.RSS(); err != nil {
		return r, err
	}
	if err := step("registered", func() error { return h.registered(ctx, r) }); err != nil {
		return r, err
	}
	var f *fleet
	defer func() {
		if f != nil {
			f.stop()
		}
	}()
	for _, s := range []struct {
		name string
		fn   func() error
	}{
		{"enrollment", func() (err error) { f, err = h.enrollment(ctx, r); return err }},
		{"idle", func() error { return h.idle(ctx, f, r) }},
		{"fan-out", func() error { return h.fanOut(ctx, f, r) }},
		{"configure", func() error { return h.configure(ctx, f, r) }},
		{"reconnect", func() error { return h.reconnect(ctx, f, r) }},
		{"presence", func() error { return h.presence(ctx, f, r) }},
	} {
		if err := step(s.name, s.fn); err != nil {
			return r, err
		}
	}
	if errs := f.stop(); len(errs) > 0 {
		return r, fmt.Errorf("%d agents stopped on their own, the first: %w", len(errs), errs[0])
	}
	return r, nil
}

// machine describes where the run ran.
func machine() string {
	model := "unknown processor"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s, %s/%s", runtime.NumCPU(), model, memTotal(), runtime.GOOS, runtime.GOARCH)
}

func memTotal() string {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown memory"
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
				return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return "unknown memory"
}

// profile records this process's CPU profile of a phase, and its heap
// after it, into SCALE_PROFILE_DIR when set: where the simulated fleet's
// time and memory go.
func profile(phase string) (stop func(), err error) {
	dir := os.Getenv("SCALE_PROFILE_DIR")
	if dir == "" {
		return func() {}, nil
	}
	cpu, err := os.Create(filepath.Join(dir, phase+".cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = cpu.Close()
		if heap, err := os.Create(filepath.Join(dir, phase+".heap.pprof")); err == nil {
			runtime.GC()
			_ = pprof.WriteHeapProfile(heap)
			_ = heap.Close()
		}
	}, nil
}

// profileManager records the manager's CPU profile for up to d into
// SCALE_PROFILE_DIR, when the manager serves its profiler (SCALE_PPROF):
// where a phase's time goes on the other side of the streams.
func profileManager(ctx context.Context, phase string, d time.Duration) {
	fetchManagerProfile(context.WithoutCancel(ctx), fmt.Sprintf("profile?seconds=%d", int(d.Seconds())), phase+".manager.cpu.pprof")
}

// phaseProfileLength is how long a phase's profiles last: about as long
// as a storm or a push takes at this size (10s for 1,000 devices), at most
// 30s, so that a small run's profile ends before the run does.
func (h *Harness) phaseProfileLength() time.Duration {
	return min(max(time.Duration(h.profile.Devices)*10*time.Millisecond, 5*time.Second), 30*time.Second)
}

// profileAPIServer records the apiserver's CPU profile for d into
// SCALE_PROFILE_DIR, when set: what the apiserver spends a phase's writes
// on, next to the manager's.
func (h *Harness) profileAPIServer(ctx context.Context, phase string, d time.Duration) {
	h.fetchAPIServer(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())), phase+".apiserver.cpu.pprof")
}

// fetchAPIServer saves the apiserver's answer to path into
// SCALE_PROFILE_DIR as name, when set. Its /metrics after a phase tell
// how long its requests took (apiserver_request_duration_seconds) and
// waited for a seat (apiserver_flowcontrol_request_wait_duration_seconds).
func (h *Harness) fetchAPIServer(ctx context.Context, path, name string) {
	dir := os.Getenv("SCALE_PROFILE_DIR")
	if dir == "" {
		return
	}
	hc, err := rest.HTTPClientFor(h.cfg)
	if err != nil {
		return
	}
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, strings.TrimSuffix(h.cfg.Host, "/")+path, nil)
	if err != nil {
		return
	}
	resp, err := hc.Do(req)
	if err != nil {
		h.logf("The apiserver's %s for %s: %v", path, name, err)
		return
	}
	saveProfile(resp, dir, name)
}

// fetchContention saves the apiserver's block profile as name, when it
// records one (SCALE_APISERVER_ARGS=--contention-profiling=true): taken
// before and after a phase, `go tool pprof -base` shows what the phase's
// requests waited on.
func (h *Harness) fetchContention(ctx context.Context, name string) {
	if strings.Contains(os.Getenv("SCALE_APISERVER_ARGS"), "contention-profiling") {
		h.fetchAPIServer(ctx, "/debug/pprof/block", name)
	}
}

// saveProfile writes a profiler's answer into dir as name, and closes it;
// a refusal is not saved as if it were the profile.
func saveProfile(resp *http.Response, dir, name string) {
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		fmt.Fprintf(os.Stderr, "%s not saved: %s %s\n", name, resp.Status, bytes.TrimSpace(msg))
		return
	}
	out, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return
	}
	defer func() { _ = out.Close() }()
	_, _ = io.Copy(out, resp.Body)
}

// dumpManagerGoroutines writes the manager's goroutines, with their stacks
// and how long each has waited, into SCALE_PROFILE_DIR at each of the
// offsets after start, when SCALE_GOROUTINES is set: what a worker that
// takes long is waiting on. Each dump of 30,000 goroutines stops the
// manager for a while (a fifth of its CPU over a 10,000-device reconnect):
// the figures of such a run are not comparable with others.
func dumpManagerGoroutines(ctx context.Context, phase string, start time.Time, at ...time.Duration) {
	if os.Getenv("SCALE_GOROUTINES") == "" {
		return
	}
	for _, d := range at {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(d))):
		}
		fetchManagerProfile(ctx, "goroutine?debug=2", fmt.Sprintf("%s.manager.goroutines-%s.txt", phase, d))
	}
}

// fetchManagerProfile saves one of the manager's /debug/pprof/ answers
// into SCALE_PROFILE_DIR, when the manager serves its profiler
// (SCALE_PPROF).
func fetchManagerProfile(ctx context.Context, query, name string) {
	dir, addr := os.Getenv("SCALE_PROFILE_DIR"), os.Getenv("SCALE_PPROF")
	if dir == "" || addr == "" {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/%s", addr, query), nil)
	if err != nil {
		return
	}
	// A manager that was just started answers once it has bound its
	// profiler's port.
	var resp *http.Response
	for range 100 {
		if resp, err = http.DefaultClient.Do(req); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return
	}
	saveProfile(resp, dir, name)
}

// keepManagerLogs copies the managers' logs of the run into
// SCALE_PROFILE_DIR, when set, before the run's directory goes: the
// timeline of a restart is in them.
func keepManagerLogs(dir string) {
	into := os.Getenv("SCALE_PROFILE_DIR")
	if into == "" || dir == "" {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "manager-*.log"))
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			_ = os.WriteFile(filepath.Join(into, filepath.Base(l)), b, 0o644)
		}
	}
}
