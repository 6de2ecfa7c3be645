package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/agent"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/conditions"
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

var _ = Describe("metrics of what goes wrong", func() {
	ctx := context.Background()

	It("count refused enrollments, expired commands, presence flushes and paused rollouts, and a resolved pause stops counting", func() {
		var before map[string]*dto.MetricFamily
		Eventually(func(g Gomega) { before = scrape(g) }).Should(Succeed())
		grew := func(now map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
			return sample(now, name, labels) - sample(before, name, labels)
		}
		f := newFleet(ctx)

		By("an enrollment with a token the gateway does not know")
		state, err := agent.LoadState(GinkgoT().TempDir())
		Expect(err).NotTo(HaveOccurred())
		stranger := agent.New(agent.Options{Gateway: env.GatewayAddr, Token: "not-a-token", Trust: agent.Trust{CABundle: env.CABundle}},
			state, &agent.Simulated{Serial: "met-stranger", PlatformName: "Linux"}, GinkgoLogr)
		Expect(stranger.Enroll(ctx)).To(MatchError(ContainSubstring("unauthenticated")))

		By("a command an offline device never picks up")
		f.enroll(ctx, "met-away")
		a := f.action(ctx, "expire-met", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionRestart,
			Devices: []string{"met-away"}, Deadline: &metav1.Duration{Duration: 2 * time.Second}})
		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionExpired))

		By("two devices connected, for a staged rollout")
		devs := map[string]*agent.Simulated{}
		for _, name := range []string{"met-r1", "met-r2"} {
			devs[name] = f.enroll(ctx, name)
			f.connect(name)
			d := device(ctx, f.ns, name)
			Expect(k8sClient.Patch(ctx, d, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"rollout":"staged"}}}`)))).To(Succeed())
		}
		By("a device that goes away: its disconnect is a presence write")
		f.enroll(ctx, "met-leaving")
		leaving, leave := context.WithCancel(ctx)
		left := make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(left)
			_ = f.agents["met-leaving"].Run(leaving)
		}()
		connected := func() bool {
			return conditions.IsTrue(device(ctx, f.ns, "met-leaving"), mdmv1alpha1.DeviceConditionConnected)
		}
		Eventually(connected).Should(BeTrue())
		leave()
		<-left
		Eventually(connected).Should(BeFalse())

		Eventually(func(g Gomega) {
			now := scrape(g)
			g.Expect(grew(now, "kubemdm_enrollments_total", map[string]string{"result": "unauthenticated"})).To(BeNumerically(">=", 1))
			g.Expect(grew(now, "kubemdm_commands_expired_total", map[string]string{"action": "Restart"})).To(BeNumerically(">=", 1))
			g.Expect(grew(now, "kubemdm_presence_flushes_total", map[string]string{"result": "ok"})).To(BeNumerically(">=", 1))
		}).Should(Succeed())

		By("a staged revision every device fails: the rollout pauses after the first")
		paused := func(g Gomega) float64 { return sample(scrape(g), "kubemdm_configuration_rollouts_paused", nil) }
		var pausedBefore float64
		Eventually(func(g Gomega) { pausedBefore = paused(g) }).Should(Succeed())
		version := func(v string) *string { return ptr.To("version " + v + "\n") }
		cfg := &mdmv1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "staged"},
			Spec: mdmv1alpha1.ConfigurationSpec{DeviceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"rollout": "staged"}},
				Rollout:  &mdmv1alpha1.RolloutSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1))},
				Settings: mdmv1alpha1.ConfigurationSettings{Files: []mdmv1alpha1.FileSetting{{Path: "/etc/staged.conf", Content: version("1")}}}}}
		Expect(k8sClient.Create(ctx, cfg)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(cfg), cfg)).To(Succeed())
			g.Expect(cfg.Status.Devices).To(HaveValue(HaveField("Applied", int32(2))))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		for _, dev := range devs {
			dev.FailSetting("passcode.minLength", true)
		}
		Eventually(func() error {
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(cfg), cfg); err != nil {
				return err
			}
			cfg.Spec.Settings.Files[0].Content = version("2")
			cfg.Spec.Settings.Passcode = &mdmv1alpha1.PasscodeSettings{MinLength: ptr.To[int32](8)}
			return k8sClient.Update(ctx, cfg)
		}).Should(Succeed())
		Eventually(paused).WithTimeout(time.Minute).Should(Equal(pausedBefore + 1))

		By("the paused configuration deleted: the gauge comes down")
		Expect(k8sClient.Delete(ctx, cfg)).To(Succeed())
		Eventually(paused).WithTimeout(30 * time.Second).Should(Equal(pausedBefore))
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
