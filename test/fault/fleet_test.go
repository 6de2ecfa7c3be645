package fault

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/agent"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/testenv"
)

// devicesPerToken spreads an enrollment over several perpetual tokens, as
// sites or batches would; this suite is about commands, not enrollment.
const devicesPerToken = 25

// fleetLabel marks a fleet's Devices, so that an action selects them all.
const fleetLabel = "fault.kubemdm.io/fleet"

type fleet struct {
	ns      string
	names   []string
	devices map[string]*agent.Simulated
}

// token creates a perpetual Linux token and returns its value and the
// gateway CA bundle from its Secret, as a device receives them.
func token(ctx context.Context, ns, name string) (value string, ca []byte) {
	t := &mdmv1alpha1.EnrollmentToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: mdmv1alpha1.EnrollmentTokenSpec{Platform: mdmv1alpha1.PlatformLinux, Perpetual: true,
			DeviceTemplate: &mdmv1alpha1.DeviceTemplate{Labels: map[string]string{fleetLabel: ns}}},
	}
	Expect(k8sClient.Create(ctx, t)).To(Succeed())
	secret := &corev1.Secret{}
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), t)).To(Succeed())
		g.Expect(t.Status.Phase).To(Equal(mdmv1alpha1.TokenPending))
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: t.Status.SecretRef.Name}, secret)).To(Succeed())
	}).Should(Succeed())
	return string(secret.Data[mdmv1alpha1.TokenSecretKey]), secret.Data[mdmv1alpha1.TokenSecretCAKey]
}

// newFleet enrolls n simulated devices through gateway and runs their
// agents until the spec ends. Device i takes (i % 20) × 250ms per command,
// so that an action over the fleet is under way for about five seconds.
func newFleet(ctx context.Context, gateway string, n int) *fleet {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "fault-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	f := &fleet{ns: ns.Name, devices: map[string]*agent.Simulated{}}
	var tokens []string
	var ca []byte
	for i := range (n + devicesPerToken - 1) / devicesPerToken {
		var value string
		value, ca = token(ctx, f.ns, fmt.Sprintf("batch-%d", i))
		tokens = append(tokens, value)
	}

	agents := make([]*agent.Agent, n)
	dir := GinkgoT().TempDir()
	for i := range n {
		name := fmt.Sprintf("dev-%05d", i)
		state, err := agent.LoadState(filepath.Join(dir, name))
		Expect(err).NotTo(HaveOccurred())
		// Commands take up to 1.9s, so that a fault lands while some run.
		// An agent reconnects only once its running command ended, so the
		// longest must stay well within a killed replica's Lease and grace
		// (5s): a device still busy then is rightly shown disconnected.
		dev := &agent.Simulated{Serial: name, PlatformName: "Linux", Model: "Sim", OSVersion: "1.0",
			Delay: time.Duration(i%20) * 100 * time.Millisecond}
		agents[i] = agent.New(agent.Options{Gateway: gateway, Token: tokens[i/devicesPerToken], Trust: agent.Trust{CABundle: ca},
			Heartbeat: time.Hour, MaxBackoff: time.Second}, state, dev, logr.Discard())
		f.names = append(f.names, name)
		f.devices[name] = dev
	}

	By(fmt.Sprintf("enrolling %d devices", n))
	work := make(chan *agent.Agent)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			defer GinkgoRecover()
			for a := range work {
				Eventually(func() error { return a.Enroll(ctx) }).WithTimeout(2 * time.Minute).Should(Succeed())
			}
		})
	}
	for _, a := range agents {
		work <- a
	}
	close(work)
	wg.Wait()

	runCtx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	for _, a := range agents {
		running.Go(func() { _ = a.Run(runCtx) })
	}
	DeferCleanup(func() { cancel(); running.Wait() })
	f.expectConnected(ctx, n)
	return f
}

// expectConnected waits until want of the fleet's Devices show Connected.
func (f *fleet) expectConnected(ctx context.Context, want int) {
	Eventually(func(g Gomega) {
		list := &mdmv1alpha1.DeviceList{}
		g.Expect(k8sClient.List(ctx, list, client.InNamespace(f.ns))).To(Succeed())
		connected := 0
		for _, d := range list.Items {
			if meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected) {
				connected++
			}
		}
		g.Expect(connected).To(Equal(want))
	}).WithTimeout(2 * time.Minute).Should(Succeed())
}

// lockAll locks every device of the fleet.
func (f *fleet) lockAll(ctx context.Context, name string) *mdmv1alpha1.DeviceAction {
	a := &mdmv1alpha1.DeviceAction{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{fleetLabel: f.ns}}},
	}
	Expect(k8sClient.Create(ctx, a)).To(Succeed())
	return a
}

// midway waits until a share of the action's rows succeeded, so that a
// fault lands while the rest are delivered and running.
func midway(ctx context.Context, a *mdmv1alpha1.DeviceAction, total int) {
	succeeded := func() int {
		n := 0
		for _, r := range a.Status.Devices {
			if r.Phase == mdmv1alpha1.CommandSucceeded {
				n++
			}
		}
		return n
	}
	// The rows, not the summary: the gateway writes them as results
	// arrive, the controller counts them later.
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		g.Expect(succeeded()).To(BeNumerically(">=", max(total/10, 1)))
	}).WithPolling(10 * time.Millisecond).Should(Succeed())
	Expect(succeeded()).To(BeNumerically("<", total),
		"the action finished before the fault; the fleet's commands must take longer")
}

// expectEachRanOnce waits for the action to end and checks that every row
// ended Succeeded, once, and that every device ran the command exactly
// once. It reports how long after the fault the action finished.
func (f *fleet) expectEachRanOnce(ctx context.Context, a *mdmv1alpha1.DeviceAction, faultAt time.Time) {
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		g.Expect(a.Status.Phase.Finished()).To(BeTrue(), "phase %s, summary %+v", a.Status.Phase, a.Status.Summary)
	}).WithTimeout(3 * time.Minute).Should(Succeed())
	GinkgoWriter.Printf("%d devices: the action finished %s after the fault\n", len(f.names), time.Since(faultAt).Round(100*time.Millisecond))
	Expect(a.Status.Phase).To(Equal(mdmv1alpha1.ActionSucceeded), "summary %+v", a.Status.Summary)
	rows := map[string]int{}
	for _, r := range a.Status.Devices {
		rows[r.Name]++
		Expect(r.Phase).To(Equal(mdmv1alpha1.CommandSucceeded), "row %s: %s (code %d) %s", r.Name, r.Phase, r.Code, r.Message)
	}
	Expect(rows).To(HaveLen(len(f.names)), "one row per device")
	var twice, never []string
	for _, name := range f.names {
		runs := 0
		for _, c := range f.devices[name].Executed() {
			if c.GetId() == string(a.UID) {
				runs++
			}
		}
		switch {
		case runs == 0:
			never = append(never, name)
		case runs > 1:
			twice = append(twice, name)
		}
		Expect(f.devices[name].Observe().Locked).To(BeTrue(), "device %s is locked", name)
	}
	Expect(twice).To(BeEmpty(), "devices that ran the command more than once")
	Expect(never).To(BeEmpty(), "devices whose row succeeded but never ran the command")
}

// shownDisconnected records, from a watch, every Device of the fleet the
// apiserver stores with Connected=False from now on.
func (f *fleet) shownDisconnected(ctx context.Context) func() []string {
	var mu sync.Mutex
	seen := map[string]bool{}
	stop, err := testenv.Watch(ctx, cfg, scheme, &mdmv1alpha1.DeviceList{}, func(ev watch.Event) {
		if d, ok := ev.Object.(*mdmv1alpha1.Device); ok && meta.IsStatusConditionFalse(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected) {
			mu.Lock()
			seen[d.Name] = true
			mu.Unlock()
		}
	}, client.InNamespace(f.ns))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(stop)
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Sorted(maps.Keys(seen))
	}
}
