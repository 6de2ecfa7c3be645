package controllers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/conditions"
)

// Fleet metrics, counted by the leader alone so that replicas do not add
// up the same devices; no label names a device.
var (
	devicesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kubemdm_devices",
		Help: "Devices by phase and whether their agent holds a stream (connected), from the manager's cache.",
	}, []string{"phase", "connected"})
	commandsQueued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubemdm_commands_queued_total",
		Help: "Commands queued for a device, by action.",
	}, []string{"action"})
	commandsExpired = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubemdm_commands_expired_total",
		Help: "Commands that reached their deadline before the device answered, by action.",
	}, []string{"action"})
	rolloutsPaused = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kubemdm_configuration_rollouts_paused",
		Help: "Configurations whose staged rollout stopped on failures (Stalled, RolloutPaused).",
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(devicesGauge, commandsQueued, commandsExpired, rolloutsPaused)
}

// FleetMetrics keeps the fleet gauges current and counts command
// transitions as the cache sees them committed, so a reconcile retried
// after a conflict counts nothing twice.
type FleetMetrics struct {
	Cache cache.Cache
	// Interval between two counts of the gauges; 15s when zero.
	Interval time.Duration

	published map[deviceKey]bool
}

// deviceKey is a series of kubemdm_devices.
type deviceKey struct{ phase, connected string }

// NeedLeaderElection: one replica counts.
func (m *FleetMetrics) NeedLeaderElection() bool { return true }

// Start counts until ctx ends.
func (m *FleetMetrics) Start(ctx context.Context) error {
	inf, err := m.Cache.GetInformer(ctx, &mdmv1alpha1.DeviceAction{})
	if err != nil {
		return err
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{UpdateFunc: func(old, o any) {
		before, ok1 := old.(*mdmv1alpha1.DeviceAction)
		after, ok2 := o.(*mdmv1alpha1.DeviceAction)
		if ok1 && ok2 {
			countTransitions(before, after)
		}
	}})
	if err != nil {
		return err
	}
	defer func() { _ = inf.RemoveEventHandler(reg) }()
	interval := m.Interval
	if interval <= 0 {
		interval = 15 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := m.count(ctx); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Counting the fleet for metrics")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// count sets the gauges from the cache: a list without copies, O(devices)
// every interval, and no request to the apiserver.
func (m *FleetMetrics) count(ctx context.Context) error {
	devices := &mdmv1alpha1.DeviceList{}
	if err := m.Cache.List(ctx, devices, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	counts := map[deviceKey]float64{}
	for i := range devices.Items {
		d := &devices.Items[i]
		phase := string(d.Status.Phase)
		if phase == "" {
			phase = "Unknown"
		}
		connected := "false"
		if conditions.IsTrue(d, mdmv1alpha1.DeviceConditionConnected) {
			connected = "true"
		}
		counts[deviceKey{phase, connected}]++
	}
	// Set first, then drop the pairs that went: a scrape never sees the
	// fleet at zero, which would restart an alert's for: clock.
	for k, n := range counts {
		devicesGauge.WithLabelValues(k.phase, k.connected).Set(n)
	}
	for k := range m.published {
		if _, ok := counts[k]; !ok {
			devicesGauge.DeleteLabelValues(k.phase, k.connected)
		}
	}
	m.published = map[deviceKey]bool{}
	for k := range counts {
		m.published[k] = true
	}
	configs := &mdmv1alpha1.ConfigurationList{}
	if err := m.Cache.List(ctx, configs, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	paused := 0
	for i := range configs.Items {
		c := &configs.Items[i]
		if s := meta.FindStatusCondition(c.Status.Conditions, mdmv1alpha1.ConditionStalled); s != nil && s.Status == metav1.ConditionTrue &&
			s.Reason == mdmv1alpha1.ConfigurationReasonRolloutPaused {
			paused++
		}
	}
	rolloutsPaused.Set(float64(paused))
	return nil
}

// countTransitions counts the rows that became Queued or Expired.
func countTransitions(before, after *mdmv1alpha1.DeviceAction) {
	was := make(map[string]mdmv1alpha1.DeviceCommandPhase, len(before.Status.Devices))
	for _, r := range before.Status.Devices {
		was[r.Name] = r.Phase
	}
	action := string(after.Spec.Action)
	for _, r := range after.Status.Devices {
		if r.Phase == was[r.Name] {
			continue
		}
		switch r.Phase {
		case mdmv1alpha1.CommandQueued:
			commandsQueued.WithLabelValues(action).Inc()
		case mdmv1alpha1.CommandExpired:
			commandsExpired.WithLabelValues(action).Inc()
		}
	}
}
