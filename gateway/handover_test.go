package gateway_test

import (
	"context"
	"net"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/agent"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/testenv"
)

func newBalancer(backend string) *testenv.Balancer {
	b, err := testenv.NewBalancer(backend)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(b.Close)
	return b
}

// connectedHistory records every Connected status the apiserver stores for
// a Device, from a watch.
func connectedHistory(ctx context.Context, d *mdmv1alpha1.Device) func() []string {
	var mu sync.Mutex
	var seen []string
	stop, err := testenv.Watch(ctx, env.Config, env.Scheme, &mdmv1alpha1.DeviceList{}, func(ev watch.Event) {
		if d, ok := ev.Object.(*mdmv1alpha1.Device); ok {
			if c := meta.FindStatusCondition(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected); c != nil {
				mu.Lock()
				seen = append(seen, string(c.Status)+"/"+c.Reason)
				mu.Unlock()
			}
		}
	}, client.InNamespace(d.Namespace), client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", d.Name)})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(stop)
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func onReplica(ctx context.Context, key client.ObjectKey, replica string) func(g Gomega) {
	return func(g Gomega) {
		d := &mdmv1alpha1.Device{}
		g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected)).To(BeTrue())
		g.Expect(d.Status.Connection).NotTo(BeNil())
		g.Expect(d.Status.Connection.Gateway).To(Equal(replica))
	}
}

var _ = Describe("Gateway replicas", func() {
	It("moves a device between replicas without showing it disconnected, and marks it once its replica is gone", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		token, pin := issuedToken(ctx, linuxToken(ns, "replicas", true))
		second, err := env.StartGatewayReplica("second")
		Expect(err).NotTo(HaveOccurred())
		lb := newBalancer(second.Addr)

		state, err := agent.LoadState(GinkgoT().TempDir())
		Expect(err).NotTo(HaveOccurred())
		a := agent.New(agent.Options{Gateway: lb.Addr(), Token: token, Trust: agent.Trust{Pin: pin},
			Heartbeat: time.Hour, MaxBackoff: 100 * time.Millisecond}, state,
			&agent.Simulated{Serial: "roamer", PlatformName: "Linux", Model: "Sim 1", OSVersion: "6.1"}, GinkgoLogr)
		Eventually(func() error { return a.Enroll(ctx) }).Should(Succeed())
		DeferCleanup(run(a))
		key := client.ObjectKey{Namespace: ns, Name: "roamer"}
		Eventually(onReplica(ctx, key, "second")).Should(Succeed())
		history := connectedHistory(ctx, &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "roamer"}})

		By("stopping the replica the device streams to, as a rollout does")
		lb.Route(env.GatewayAddr)
		second.Stop()
		Eventually(onReplica(ctx, key, testenv.Replica)).Should(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKey{Namespace: testenv.Namespace, Name: "kubemdm-gateway-second"}, &coordinationv1.Lease{})
		}).Should(Satisfy(apierrors.IsNotFound), "the stopped replica released its Lease")
		// Well past the grace and several sweeps.
		Consistently(onReplica(ctx, key, testenv.Replica), 2*time.Second, 100*time.Millisecond).Should(Succeed())
		Expect(history()).NotTo(ContainElement(HavePrefix("False")), "the device showed disconnected while it moved")

		By("stopping a replica the device cannot reach again")
		third, err := env.StartGatewayReplica("third")
		Expect(err).NotTo(HaveOccurred())
		lb.Route(third.Addr)
		lb.Cut()
		Eventually(onReplica(ctx, key, "third")).Should(Succeed())
		dead, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		Expect(dead.Close()).To(Succeed())
		lb.Route(dead.Addr().String())
		third.Stop()
		Eventually(func(g Gomega) {
			d := &mdmv1alpha1.Device{}
			g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
			c := meta.FindStatusCondition(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal("GatewayGone"))
			g.Expect(c.Message).To(ContainSubstring("third"))
			g.Expect(d.Status.Connection).To(BeNil())
		}, 5*time.Second).Should(Succeed())
	})
})
