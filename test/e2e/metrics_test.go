package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// scrape reads the manager's metrics endpoint as Prometheus would.
func scrape(g Gomega) map[string]*dto.MetricFamily {
	res, err := http.Get("http://" + env.MetricsAddr + "/metrics")
	g.Expect(err).NotTo(HaveOccurred())
	defer res.Body.Close()
	g.Expect(res.StatusCode).To(Equal(http.StatusOK))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	g.Expect(err).NotTo(HaveOccurred())
	return families
}

// sample is the value of the series of a family with these labels: a
// counter's or gauge's value, a histogram's count; 0 when absent.
func sample(families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := families[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

var _ = Describe("metrics", func() {
	ctx := context.Background()

	It("count enrollments, commands from queuing to result, gateway calls and the fleet, with no label naming a device", func() {
		var before map[string]*dto.MetricFamily
		Eventually(func(g Gomega) { before = scrape(g) }).Should(Succeed())
		f := newFleet(ctx)
		for _, name := range []string{"met-1", "met-2"} {
			f.enroll(ctx, name)
			f.connect(name)
		}
		a := f.action(ctx, "lock-met", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock, Devices: []string{"met-1", "met-2"}})
		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionSucceeded))

		lock := map[string]string{"action": "Lock"}
		succeeded := map[string]string{"action": "Lock", "result": "Succeeded"}
		Eventually(func(g Gomega) {
			now := scrape(g)
			grew := func(name string, labels map[string]string) float64 {
				return sample(now, name, labels) - sample(before, name, labels)
			}
			g.Expect(grew("kubemdm_enrollments_total", map[string]string{"result": "ok"})).To(BeNumerically(">=", 2))
			g.Expect(grew("kubemdm_commands_queued_total", lock)).To(BeNumerically(">=", 2))
			g.Expect(grew("kubemdm_commands_delivered_total", lock)).To(BeNumerically(">=", 2))
			g.Expect(grew("kubemdm_command_delivery_seconds", lock)).To(BeNumerically(">=", 2))
			g.Expect(grew("kubemdm_commands_completed_total", succeeded)).To(BeNumerically(">=", 2))
			g.Expect(grew("kubemdm_command_completion_seconds", succeeded)).To(BeNumerically(">=", 2))
			g.Expect(grew("kubemdm_gateway_requests_total", map[string]string{"procedure": "/kubemdm.agent.v1.AgentService/CompleteCommand", "code": "ok"})).To(BeNumerically(">=", 2))
			g.Expect(grew("kubemdm_gateway_apiserver_writes_total", map[string]string{"kind": "DeviceAction", "verb": "patch", "subresource": "status"})).To(BeNumerically(">=", 1))
			g.Expect(sample(now, "kubemdm_devices", map[string]string{"phase": "Enrolled", "connected": "true"})).To(BeNumerically(">=", 2))
			g.Expect(sample(now, "kubemdm_gateway_streams", nil)).To(BeNumerically(">=", 2))
			// No series is per device.
			for name, family := range now {
				for _, m := range family.GetMetric() {
					for _, l := range m.GetLabel() {
						g.Expect(l.GetValue()).NotTo(HavePrefix("met-"), "%s has a label naming a device", name)
					}
				}
			}
		}).Should(Succeed())
	})
})

// TestDashboardsAndAlertsNameRealMetrics: every kubemdm metric the Grafana
// dashboard and the alerting rules use is one the manager defines, so a
// renamed metric cannot leave a blank panel or a silent alert.
func TestDashboardsAndAlertsNameRealMetrics(t *testing.T) {
	defined := map[string]bool{}
	for _, dir := range []string{"gateway", "controllers"} {
		files, _ := filepath.Glob(filepath.Join("..", "..", dir, "*.go"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range regexp.MustCompile(`Name:\s+"(kubemdm_[a-z_]+)"`).FindAllStringSubmatch(string(b), -1) {
				defined[m[1]] = true
			}
		}
	}
	if len(defined) < 10 {
		t.Fatalf("found only %d metric definitions", len(defined))
	}
	for _, f := range []string{"config/grafana/kubemdm-dashboard.json", "config/prometheus/rules.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range regexp.MustCompile(`kubemdm_[a-z_]+`).FindAllString(string(b), -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			if !defined[base] && !strings.HasPrefix(name, "kubemdm-") {
				t.Errorf("%s uses %s, which no kubemdm metric is", f, name)
			}
		}
	}
}
