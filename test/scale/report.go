package scale

import (
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// Target is one figure of a run against what it must reach.
type Target struct {
	Name   string
	Figure string
	// Value is compared with Limit: at most, or at least when AtLeast.
	Value, Limit float64
	AtLeast      bool
	// Noisy figures (times, memory) vary with the machine's load and the
	// garbage collector's timing; counts of writes do not.
	Noisy bool
	// Holding, for a target not yet reached, is the bound make test holds
	// meanwhile, just past the worst of the runs that measured it when the
	// harness landed, so that the figure cannot get worse unnoticed;
	// docs/scale.md says why the target is not reached. Zero holds the
	// target itself.
	Holding float64
	// NotJudged, when set, says why the run shows the figure without
	// judging it: too few objects for it to mean anything.
	NotJudged string
}

// Met reports whether the value reaches the limit, the limit loosened by
// margin (1 for none) when the figure is noisy.
func (t Target) Met(margin float64) bool { return t.NotJudged != "" || t.reaches(t.Limit, margin) }

// Holds reports whether the value reaches what make test holds: the
// target, or the bound held until it is reached.
func (t Target) Holds(margin float64) bool {
	if t.Holding == 0 || t.NotJudged != "" {
		return t.Met(margin)
	}
	return t.reaches(t.Holding, margin)
}

// reaches compares at two decimals, the precision the table shows: one
// write more over a thousand devices is not a second write per device.
func (t Target) reaches(limit, margin float64) bool {
	if !t.Noisy {
		margin = 1
	}
	v := math.Round(t.Value*100) / 100
	if t.AtLeast {
		return v >= limit/margin
	}
	return v <= limit*margin
}

func (t Target) limitText() string {
	if t.AtLeast {
		return fmt.Sprintf("≥ %s", num(t.Limit))
	}
	return fmt.Sprintf("≤ %s", num(t.Limit))
}

func num(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.2f", v)
}

func kib(b int64) float64 { return float64(b) / 1024 }

// minRegisteredForMemory is the fewest registered Devices over which the
// manager's memory per Device object is judged.
const minRegisteredForMemory = 1000

// Targets are the targets, computed from the run.
func (r *Results) Targets() []Target {
	p, b := r.Profile, r.Baseline
	n := float64(p.Devices)
	var ts []Target
	add := func(t Target) { ts = append(ts, t) }

	enrollRate := n / r.Enrollment.Time.Seconds()
	add(Target{Name: "enrollment rate / raw create rate", Noisy: true, AtLeast: true, Limit: 0.25, Holding: 0.015,
		Value: enrollRate / b.CreateRate(),
		Figure: fmt.Sprintf("%.0f/s vs %.0f/s (%s for %d); %.2f of the Device-write ceiling, %.0f/s", enrollRate, b.CreateRate(),
			r.Enrollment.Time.Round(time.Millisecond), p.Devices, enrollRate/b.Devices.EnrollmentCeiling(), b.Devices.EnrollmentCeiling())})
	add(Target{Name: "writes per enrolled and connected device", Limit: 3, Holding: 3.5,
		Value: r.Enrollment.Writes.Total() / n, Figure: r.Enrollment.Writes.String()})

	// No heartbeat at all is a broken fleet, not a quiet one: it fails.
	w, perThousand := r.Idle.Writes.Total(), math.Inf(1)
	if r.Idle.Heartbeats > 0 {
		perThousand = w / float64(r.Idle.Heartbeats) * 1000
	}
	add(Target{Name: "writes per 1,000 heartbeats, idle", Limit: 5, Value: perThousand,
		Figure: fmt.Sprintf("%.0f writes, %d heartbeats in %s (%s)", w, r.Idle.Heartbeats, p.Window, r.Idle.Writes)})
	if p.Registered > 0 {
		per := kib(r.Registered.RSS-r.ManagerIdleRSS) / float64(p.Registered)
		add(Target{Name: "writes per registered Device to settle", Limit: 2,
			Value: r.Registered.Writes.Total() / float64(p.Registered), Figure: r.Registered.Writes.String()})
		perObject := Target{Name: "manager KiB per Device object", Noisy: true, Limit: 16, Value: per,
			Figure: fmt.Sprintf("RSS %.0f MiB idle, %.0f MiB with %d Devices", kib(r.ManagerIdleRSS)/1024, kib(r.Registered.RSS)/1024, p.Registered)}
		// The manager's RSS moves by several MiB with the collector's
		// timing alone: over a hundred Devices that reads as 50 KiB each.
		if p.Registered < minRegisteredForMemory {
			perObject.NotJudged = fmt.Sprintf("fewer than %d Devices", minRegisteredForMemory)
		}
		add(perObject)
		add(Target{Name: "writes while registered Devices stay quiet", Limit: 0,
			Value:  r.Registered.QuietWrites.Total(),
			Figure: fmt.Sprintf("%s over %s, manager CPU %s", r.Registered.QuietWrites, p.Window, r.Registered.QuietCPU)})
	}
	perConnected := kib(r.Idle.RSS-max(r.Registered.RSS, r.ManagerIdleRSS)) / n
	add(Target{Name: "manager KiB per connected device", Noisy: true, Limit: 48, Holding: 170, Value: perConnected,
		Figure: fmt.Sprintf("RSS %.0f MiB with %d connected", kib(r.Idle.RSS)/1024, p.Devices)})
	add(Target{Name: "simulator KiB per device", Noisy: true, Limit: 100, Value: kib(r.Idle.SimulatorBytes),
		Figure: "heap allocated and stacks in use in the harness, per connected device"})

	fanBase := time.Duration(float64(r.FanOut.Devices) / b.CreateRate() * float64(time.Second))
	add(Target{Name: "Lock fan-out time / ConfigMap creates", Noisy: true, Limit: 2,
		Value:  r.FanOut.Time.Seconds() / fanBase.Seconds(),
		Figure: fmt.Sprintf("%s for %d devices vs %s", r.FanOut.Time.Round(time.Millisecond), r.FanOut.Devices, fanBase.Round(time.Millisecond))})
	add(Target{Name: "DeviceAction writes for the Lock", Limit: 20, Value: r.FanOut.Writes.Of("deviceactions"),
		Figure: r.FanOut.Writes.String()})

	cfgBase := time.Duration(n / b.CreateRate() * float64(time.Second))
	add(Target{Name: "Configuration delivery time / ConfigMap creates", Noisy: true, Limit: 2,
		Value:  r.Configure.Delivered.Seconds() / cfgBase.Seconds(),
		Figure: fmt.Sprintf("%s until %d devices held it vs %s", r.Configure.Delivered.Round(time.Millisecond), p.Devices, cfgBase.Round(time.Millisecond))})
	// Every device's report of the revision is one Device status write,
	// so the time until all show it is measured against as many status
	// applies in the Device baseline.
	applyBase := time.Duration(float64(b.Devices.StatusTime) * n / float64(2*max(b.Devices.Creates, 1)))
	add(Target{Name: "Configuration shown applied / Device status applies", Noisy: true, Limit: 2, Holding: 3.5,
		Value:  r.Configure.Time.Seconds() / applyBase.Seconds(),
		Figure: fmt.Sprintf("%s until %d Devices showed it and it counted them vs %s", r.Configure.Time.Round(time.Millisecond), p.Devices, applyBase.Round(time.Millisecond))})
	add(Target{Name: "writes per device for a Configuration push", Limit: 1.1,
		Value: r.Configure.Writes.Total() / n, Figure: r.Configure.Writes.String()})
	add(Target{Name: "seconds from manager kill -9 to a command done on all", Noisy: true, Limit: 30,
		Value: r.Reconnect.Time.Seconds(), Figure: fmt.Sprintf("%d devices in groups of %d", p.Devices, mdmv1alpha1.MaxSelectorMatches)})
	add(Target{Name: "Device writes per device on reconnect", Limit: 1,
		Value: r.Reconnect.Writes.Of("devices") / n, Figure: r.Reconnect.Writes.String()})
	hs := r.Reconnect.Handshakes
	add(Target{Name: "reconnect handshakes that resumed a TLS session", AtLeast: true, Limit: 0.9,
		Value:  resumedShare(hs),
		Figure: fmt.Sprintf("%.0f of %.0f handed to the restarted gateway; %.0f not handed over (closed, refused, timed out or unserved)", hs["resumed"], hs["ok"]+hs["resumed"], hs["error"]+hs["timeout"]+hs["closed"]+hs["unserved"])})
	pr := r.Presence
	add(Target{Name: "presence transitions lost across a kill -9", Limit: 0,
		Value: float64(r.lostTransitions()),
		Figure: fmt.Sprintf("%d of %d switched off while the manager was down shown disconnected in %s; of the %d that came back, %d seen disconnected, %d connected throughout",
			pr.ShownOff, pr.Off, pr.Time.Round(time.Millisecond), pr.Devices-pr.Off, pr.WronglyOff, pr.ShownOn)})
	add(Target{Name: "Device writes per switched-off device across a kill -9", Limit: 1.1,
		Value: pr.Writes.Of("devices") / float64(max(pr.Off, 1)), Figure: pr.Writes.String()})
	return ts
}

// Table is the run's figures and targets as a Markdown table.
func (r *Results) Table() string {
	var s strings.Builder
	b := r.Baseline
	fmt.Fprintf(&s, "Machine: %s\n", r.Machine)
	fmt.Fprintf(&s, "Profile: %d connected devices, %d registered Devices, heartbeat %s, window %s\n",
		r.Profile.Devices, r.Profile.Registered, r.Profile.Heartbeat, r.Profile.Window)
	if args := os.Getenv("SCALE_MANAGER_ARGS"); args != "" {
		fmt.Fprintf(&s, "Manager flags beyond the defaults: %s\n", args)
	}
	fmt.Fprintf(&s, "Baseline: %d ConfigMaps by %d workers in %s (%.0f/s); create→watch p50 %s, p99 %s\n",
		b.Creates, createWorkers, b.CreateTime.Round(time.Millisecond), b.CreateRate(),
		b.WatchP50.Round(10*time.Microsecond), b.WatchP99.Round(10*time.Microsecond))
	fmt.Fprintf(&s, "Device baseline: %s\n\n", b.Devices)
	s.WriteString("| measure | value | target | met | figures |\n|---|---|---|---|---|\n")
	for _, t := range r.Targets() {
		// Met strictly here; the test loosens noisy figures by its margin.
		met := "yes"
		switch {
		case t.NotJudged != "":
			met = "not judged: " + t.NotJudged
		case !t.Met(1):
			met = "**no**"
		}
		fmt.Fprintf(&s, "| %s | %.2f | %s | %s | %s |\n", t.Name, t.Value, t.limitText(), met, t.Figure)
	}
	if r.Profile.Registered > 0 {
		fmt.Fprintf(&s, "\nRegistered Devices settled in %s (%s); a label list of %d took %s, a field-selector list %s.\n",
			r.Registered.Settle.Round(time.Millisecond), r.Registered.Writes, r.Registered.Listed,
			r.Registered.LabelList.Round(time.Millisecond), r.Registered.FieldList.Round(time.Millisecond))
	}
	return s.String()
}
