package fault

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/agent"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/testenv"
)

func balancer(backends ...string) *testenv.Balancer {
	b, err := testenv.NewBalancer(backends...)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(b.Close)
	return b
}

var _ = Describe("Faults during a fleet-wide action", func() {
	// solo is one manager serving a fleet through a balancer.
	type solo struct {
		addr    string
		lb      *testenv.Balancer
		manager *testenv.Process
	}
	DescribeTable("loses and repeats nothing when a fault lands mid-action",
		func(ctx SpecContext, fault func(context.Context, *solo)) {
			s := &solo{addr: freeAddr()}
			s.lb = balancer(s.addr)
			s.manager = startManager("solo", s.addr, s.lb.Addr(), true)
			f := newFleet(ctx, s.lb.Addr(), fleetSize)

			a := f.lockAll(ctx, "lock-through-fault")
			midway(ctx, a, fleetSize)
			faultAt := time.Now()
			fault(ctx, s)
			f.expectEachRanOnce(ctx, a, faultAt)
		},
		Entry("kill -9 of the manager, then a new one", func(_ context.Context, s *solo) {
			s.manager.Kill()
			startManager("solo", s.addr, s.lb.Addr(), true)
		}),
		Entry("kill -9 of the kube-apiserver, etcd kept, 2s down", func(ctx context.Context, _ *solo) {
			killAndRestartAPIServer(ctx, 2*time.Second)
		}),
		Entry("every connection cut, twice", func(_ context.Context, s *solo) {
			s.lb.Cut()
			time.Sleep(300 * time.Millisecond)
			s.lb.Cut()
		}),
	)

	It("loses and repeats nothing when one of two gateway replicas is killed, and shows its stranded devices disconnected", func(ctx SpecContext) {
		alphaAddr, betaAddr := freeAddr(), freeAddr()
		lb := balancer(alphaAddr, betaAddr)
		startManager("alpha", alphaAddr, lb.Addr(), true)
		beta := startManager("beta", betaAddr, lb.Addr(), false)
		f := newFleet(ctx, lb.Addr(), fleetSize)
		// A few devices that can reach only beta, as behind a route that
		// no longer exists once beta is gone.
		stranded := newFleet(ctx, balancer(betaAddr).Addr(), 3)
		Eventually(func(g Gomega) {
			list := &mdmv1alpha1.DeviceList{}
			g.Expect(k8sClient.List(ctx, list, client.InNamespace(f.ns))).To(Succeed())
			on := map[string]int{}
			for _, d := range list.Items {
				if c := d.Status.Connection; c != nil {
					on[c.Gateway]++
				}
			}
			g.Expect(on).To(HaveKeyWithValue("alpha", BeNumerically(">", 0)))
			g.Expect(on).To(HaveKeyWithValue("beta", BeNumerically(">", 0)))
		}).Should(Succeed(), "the balancer spreads the fleet over both replicas")

		flapped := f.shownDisconnected(ctx)
		a := f.lockAll(ctx, "lock-through-replica-loss")
		midway(ctx, a, fleetSize)
		By("kill -9 of replica beta")
		killedAt := time.Now()
		beta.Kill()
		Eventually(func(g Gomega) {
			list := &mdmv1alpha1.DeviceList{}
			g.Expect(k8sClient.List(ctx, list, client.InNamespace(stranded.ns))).To(Succeed())
			g.Expect(list.Items).To(HaveLen(3))
			for _, d := range list.Items {
				c := meta.FindStatusCondition(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Status).To(Equal(metav1.ConditionFalse), d.Name)
				g.Expect(c.Reason).To(Equal("GatewayGone"), d.Name)
			}
		}).WithTimeout(leaseDuration+3*handoverGrace+10*time.Second).Should(Succeed(),
			"the devices stranded on the killed replica show disconnected once its Lease lapsed")
		GinkgoWriter.Printf("Stranded devices shown disconnected %s after the kill (Lease %s, grace %s)\n",
			time.Since(killedAt).Round(100*time.Millisecond), leaseDuration, handoverGrace)

		f.expectEachRanOnce(ctx, a, killedAt)
		Eventually(func(g Gomega) {
			list := &mdmv1alpha1.DeviceList{}
			g.Expect(k8sClient.List(ctx, list, client.InNamespace(f.ns))).To(Succeed())
			for _, d := range list.Items {
				g.Expect(meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected)).To(BeTrue(), d.Name)
				g.Expect(d.Status.Connection).To(HaveField("Gateway", "alpha"), d.Name)
			}
		}).Should(Succeed(), "the devices that could move are connected to alpha")
		Expect(flapped()).To(BeEmpty(), "devices that moved to alpha but were shown disconnected")
	})
})

var _ = Describe("An agent killed between executing and reporting", func() {
	// agentProcess runs one simulated device in an agent process that logs
	// what it executes to a file that survives the kill.
	agentProcess := func(gateway, tokenValue, caFile, stateDir string) *testenv.Process {
		cmd := exec.Command(agentBin, "--gateway", gateway, "--ca-file", caFile, "--state-dir", stateDir,
			"--simulate", "1", "--simulate-prefix", "proc-", "--simulate-delay", "5s", "--simulate-execution-log",
			"--heartbeat", "1h", "--zap-devel")
		cmd.Env = append(os.Environ(), "KUBEMDM_TOKEN="+tokenValue)
		return start("agent", cmd)
	}
	executions := func(stateDir string, a *mdmv1alpha1.DeviceAction) int {
		raw, err := os.ReadFile(filepath.Join(stateDir, "proc-00000", agent.ExecutionLogName))
		if os.IsNotExist(err) {
			return 0
		}
		Expect(err).NotTo(HaveOccurred())
		return bytes.Count(raw, []byte(string(a.UID)+" "))
	}
	// started waits until the agent has journaled that it began the
	// command. Delivered is written before the command is sent, so a row
	// that says Delivered does not yet mean the agent holds it.
	started := func(stateDir string, a *mdmv1alpha1.DeviceAction) {
		Eventually(func(g Gomega) bool {
			st, err := agent.LoadState(filepath.Join(stateDir, "proc-00000"))
			g.Expect(err).NotTo(HaveOccurred())
			_, ok := st.StartedOnly(string(a.UID))
			return ok
		}).Should(BeTrue(), "the agent began the command")
	}
	type agentFault struct {
		ns, addr, stateDir string
		lb                 *testenv.Balancer
		manager, agent     *testenv.Process
		run                func() *testenv.Process
	}
	setup := func(ctx context.Context) *agentFault {
		addr := freeAddr()
		lb := balancer(addr)
		manager := startManager("agentfault", addr, lb.Addr(), true)
		nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "fault-agent-"}}
		Expect(k8sClient.Create(ctx, nsObj)).To(Succeed())
		value, ca := token(ctx, nsObj.Name, "proc")
		dir := GinkgoT().TempDir()
		caFile := filepath.Join(dir, "gateway-ca.crt")
		Expect(os.WriteFile(caFile, ca, 0o600)).To(Succeed())
		stateDir := filepath.Join(dir, "state")
		run := func() *testenv.Process { return agentProcess(lb.Addr(), value, caFile, stateDir) }
		proc := run()
		Eventually(func(g Gomega) {
			d := &mdmv1alpha1.Device{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: nsObj.Name, Name: "proc-00000"}, d)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected)).To(BeTrue())
		}).Should(Succeed())
		return &agentFault{ns: nsObj.Name, addr: addr, stateDir: stateDir, lb: lb, manager: manager, agent: proc, run: run}
	}
	lock := func(ctx context.Context, ns, name string) *mdmv1alpha1.DeviceAction {
		a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock, Devices: []string{"proc-00000"}}}
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Devices).To(ContainElement(HaveField("Phase", mdmv1alpha1.CommandDelivered)))
		}).Should(Succeed())
		return a
	}
	row := func(ctx context.Context, a *mdmv1alpha1.DeviceAction) mdmv1alpha1.DeviceResult {
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase.Finished()).To(BeTrue(), "phase %s", a.Status.Phase)
		}).Should(Succeed())
		Expect(a.Status.Devices).To(HaveLen(1))
		return a.Status.Devices[0]
	}

	It("reports the result it journaled and does not run the command again", func(ctx SpecContext) {
		t := setup(ctx)
		a := lock(ctx, t.ns, "lock-then-kill")
		started(t.stateDir, a)
		By("kill -9 of the manager, so that the result cannot be reported")
		t.manager.Kill()
		Eventually(func() int { return executions(t.stateDir, a) }).Should(Equal(1), "the device ran the command")
		Eventually(func() (string, error) {
			raw, err := os.ReadFile(filepath.Join(t.stateDir, "proc-00000", "state.json"))
			return string(raw), err
		}).Should(ContainSubstring(`"`+string(a.UID)+`":{"code":0`), "the agent journaled the result")
		By("kill -9 of the agent, holding a result it could not report")
		t.agent.Kill()
		startManager("agentfault", t.addr, t.lb.Addr(), true)
		t.run()
		r := row(ctx, a)
		Expect(r.Phase).To(Equal(mdmv1alpha1.CommandSucceeded), "code %d: %s", r.Code, r.Message)
		Consistently(func() int { return executions(t.stateDir, a) }, 2*time.Second).Should(Equal(1), "the command ran once")
	})

	It("reports a command it was killed in the middle of as aborted and does not run it again", func(ctx SpecContext) {
		t := setup(ctx)
		a := lock(ctx, t.ns, "lock-killed-midway")
		started(t.stateDir, a)
		By("kill -9 of the agent while the command runs")
		t.agent.Kill()
		Expect(executions(t.stateDir, a)).To(BeZero(), "killed before the command finished")
		t.run()
		r := row(ctx, a)
		Expect(r.Phase).To(Equal(mdmv1alpha1.CommandFailed))
		Expect(r.Code).To(Equal(mdmv1alpha1.CodeAborted), r.Message)
		Consistently(func() int { return executions(t.stateDir, a) }, 2*time.Second).Should(BeZero(), "the command did not run again")
	})
})
