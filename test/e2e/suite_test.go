// Package e2e runs DeviceActions end to end: manifests into a real
// kube-apiserver, the controllers and the gateway in a manager, and simulated
// agents over mTLS on loopback executing the commands.
package e2e

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubemdm/kubemdm/agent"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/testenv"
)

var (
	env       *testenv.Env
	k8sClient client.Client
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "End-to-end Suite")
}

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(15 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	env, err = testenv.Start(testenv.Options{DeviceActions: true, Webhooks: true, Metrics: true})
	Expect(err).NotTo(HaveOccurred())
	k8sClient = env.Client
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

type fleet struct {
	platform mdmv1alpha1.Platform
	ns       string
	token    string
	agents   map[string]*agent.Agent
	devices  map[string]*agent.Simulated
}

// newFleet creates a namespace and a perpetual Linux token in it.
func newFleet(ctx context.Context) *fleet {
	return newPlatformFleet(ctx, mdmv1alpha1.PlatformLinux)
}

// newPlatformFleet creates a namespace and a perpetual token for platform.
func newPlatformFleet(ctx context.Context, platform mdmv1alpha1.Platform) *fleet {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	token := &mdmv1alpha1.EnrollmentToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "fleet"},
		Spec:       mdmv1alpha1.EnrollmentTokenSpec{Platform: platform, Perpetual: true},
	}
	Expect(k8sClient.Create(ctx, token)).To(Succeed())
	secret := &corev1.Secret{}
	Eventually(func(g Gomega) {
		// Pending means the hash the gateway matches is in the status too.
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
		g.Expect(token.Status.Phase).To(Equal(mdmv1alpha1.TokenPending))
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "fleet-token"}, secret)).To(Succeed())
	}).Should(Succeed())
	f := &fleet{platform: platform, ns: ns.Name, token: string(secret.Data[mdmv1alpha1.TokenSecretKey]),
		agents: map[string]*agent.Agent{}, devices: map[string]*agent.Simulated{}}
	return f
}

// enroll enrolls a simulated device named after its serial number.
func (f *fleet) enroll(ctx context.Context, name string) *agent.Simulated {
	state, err := agent.LoadState(GinkgoT().TempDir())
	Expect(err).NotTo(HaveOccurred())
	dev := &agent.Simulated{Serial: name, PlatformName: string(f.platform), Model: "Sim", OSVersion: "1.0"}
	a := agent.New(agent.Options{Gateway: env.GatewayAddr, Token: f.token, Trust: agent.Trust{CABundle: env.CABundle},
		Heartbeat: time.Hour, MaxBackoff: 200 * time.Millisecond}, state, dev, GinkgoLogr)
	// The gateway's cache may trail the token's status by a moment.
	Eventually(func() error { return a.Enroll(ctx) }).Should(Succeed())
	Expect(a.Identity().Name).To(Equal(name))
	f.agents[name], f.devices[name] = a, dev
	return dev
}

// connect runs a device's agent until the spec ends.
func (f *fleet) connect(name string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		_ = f.agents[name].Run(ctx)
	}()
	// Registered after the agent's temporary state directory, so that the
	// agent stops before its directory is removed.
	DeferCleanup(func() { cancel(); <-done })
}

func (f *fleet) action(ctx context.Context, name string, spec mdmv1alpha1.DeviceActionSpec) *mdmv1alpha1.DeviceAction {
	a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name}, Spec: spec}
	Expect(k8sClient.Create(ctx, a)).To(Succeed())
	return a
}

func finished(ctx context.Context, a *mdmv1alpha1.DeviceAction) func(g Gomega) *mdmv1alpha1.DeviceAction {
	return func(g Gomega) *mdmv1alpha1.DeviceAction {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		g.Expect(a.Status.Phase.Finished()).To(BeTrue(), "phase %s", a.Status.Phase)
		return a
	}
}

func rowOf(a *mdmv1alpha1.DeviceAction, name string) mdmv1alpha1.DeviceResult {
	for _, r := range a.Status.Devices {
		if r.Name == name {
			return r
		}
	}
	return mdmv1alpha1.DeviceResult{}
}

func device(ctx context.Context, ns, name string) *mdmv1alpha1.Device {
	d := &mdmv1alpha1.Device{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
	return d
}

func tokenValue(ctx context.Context, ns, secret string) string {
	s := &corev1.Secret{}
	Eventually(func() error { return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: secret}, s) }).Should(Succeed())
	return string(s.Data[mdmv1alpha1.TokenSecretKey])
}

// configurations creates a Configuration per name in the fleet's
// namespace, each writing a file of its own, assigned by name only.
func (f *fleet) configurations(ctx context.Context, names ...string) {
	for _, name := range names {
		content := "managed by " + name + "\n"
		Expect(k8sClient.Create(ctx, &mdmv1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
			Spec: mdmv1alpha1.ConfigurationSpec{Settings: mdmv1alpha1.ConfigurationSettings{
				Files: []mdmv1alpha1.FileSetting{{Path: "/etc/kubemdm/" + name, Content: &content}}}}})).To(Succeed())
	}
}
