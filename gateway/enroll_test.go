package gateway_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	"github.com/kubemdm/kubemdm/api/agent/v1/agentv1connect"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/gateway"
	"github.com/kubemdm/kubemdm/internal/enrollment"
	"github.com/kubemdm/kubemdm/internal/pki"
	"github.com/kubemdm/kubemdm/internal/testenv"
)

// plainClient speaks to the gateway without a client certificate, trusting
// it through the CA bundle.
func plainClient() agentv1connect.AgentServiceClient {
	tlsCfg := &tls.Config{RootCAs: pki.PoolFromPEM(env.CABundle), ServerName: "127.0.0.1"}
	return agentv1connect.NewAgentServiceClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true}},
		"https://"+env.GatewayAddr)
}

func enrollRequest(token, serial string) *connect.Request[agentv1.EnrollRequest] {
	st, err := agentStateForCSR()
	Expect(err).NotTo(HaveOccurred())
	return connect.NewRequest(&agentv1.EnrollRequest{Token: token, CsrPem: st,
		DeviceInfo: &agentv1.DeviceInfo{SerialNumber: serial, Platform: "Linux"}})
}

var _ = Describe("Enrollment", func() {
	ctx := context.Background()
	var ns string
	BeforeEach(func() { ns = newNamespace(ctx) })

	It("creates the Device from the token's template and connects it", func() {
		token := linuxToken(ns, "one", false)
		token.Spec.Owner = "bob@example.com"
		token.Spec.DeviceTemplate = &mdmv1alpha1.DeviceTemplate{
			Labels:     map[string]string{"fleet": "lab"},
			Attributes: map[string]string{"costCenter": "42"},
			Policies:   []mdmv1alpha1.PolicyAssignment{{Name: "baseline", Priority: ptr.To[int32](10)}},
		}
		value, pin := issuedToken(ctx, token)
		a, _ := newAgent(value, pin, "SN-0001")
		Expect(a.Enroll(ctx)).To(Succeed())

		device := &mdmv1alpha1.Device{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sn-0001"}, device)).To(Succeed())
		Expect(a.Identity().UID).To(Equal(string(device.UID)))
		Expect(device.Labels).To(SatisfyAll(HaveKeyWithValue("fleet", "lab"), HaveKeyWithValue(gateway.LabelEnrollmentToken, "one")))
		Expect(device.Spec.Owner).To(Equal("bob@example.com"))
		Expect(device.Spec.SerialNumber).To(Equal("SN-0001"))
		Expect(device.Spec.Attributes).To(HaveKeyWithValue("costCenter", "42"))
		Expect(device.Spec.Configurations).To(ConsistOf(mdmv1alpha1.ConfigurationAssignment{Name: "baseline", Priority: ptr.To[int32](10)}))
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(device), device)).To(Succeed())
			g.Expect(device.Status.Phase).To(Equal(mdmv1alpha1.DeviceEnrolled))
			g.Expect(device.Status.EnrollmentToken).To(Equal("one"))
		}).Should(Succeed())
		// The facts come with the agent's first report, once it connects.
		Expect(device.Status.DeviceInfo).To(BeNil())

		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
			g.Expect(token.Status.Phase).To(Equal(mdmv1alpha1.TokenDone))
			g.Expect(token.Status.EnrollmentCount).To(Equal(int32(1)))
			g.Expect(token.Status.LastEnrollmentAt).NotTo(BeNil())
			g.Expect(token.Status.SecretRef).To(BeNil(), "a consumed one-time token loses its value")
		}).Should(Succeed())

		stop := run(a)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(device), device)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(device.Status.Conditions, mdmv1alpha1.DeviceConditionConnected)).To(BeTrue())
			g.Expect(meta.IsStatusConditionTrue(device.Status.Conditions, mdmv1alpha1.ConditionReady)).To(BeTrue())
			g.Expect(meta.IsStatusConditionTrue(device.Status.Conditions, mdmv1alpha1.DeviceConditionEnrolled)).To(BeTrue())
			g.Expect(device.Status.LastSeen).NotTo(BeNil())
			g.Expect(device.Status.ObservedGeneration).To(Equal(device.Generation))
			g.Expect(device.Status.DeviceInfo).NotTo(BeNil())
			g.Expect(device.Status.DeviceInfo.Model).To(Equal("Sim 1"))
			g.Expect(device.Status.Certificates).To(ContainElement(HaveField("Source", "identity")))
		}).Should(Succeed())
		stop()
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(device), device)).To(Succeed())
			g.Expect(meta.IsStatusConditionFalse(device.Status.Conditions, mdmv1alpha1.DeviceConditionConnected)).To(BeTrue())
		}).Should(Succeed())
	})

	It("writes a new Device once for its enrollment: the create carries the signed record, which the Device controller puts in the status", func() {
		token := linuxToken(ns, "record", true)
		value, pin := issuedToken(ctx, token)
		writes := watchDeviceWrites(ctx, ns, "sn-record")
		a, _ := newAgent(value, pin, "SN-RECORD")
		Expect(a.Enroll(ctx)).To(Succeed())

		device := &mdmv1alpha1.Device{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sn-record"}, device)).To(Succeed())
		rec, err := enrollment.Verify(device.Annotations[mdmv1alpha1.AnnotationEnrollment], env.DeviceCA.PublicKey(),
			ns, device.Name, device.CreationTimestamp.Time)
		Expect(err).NotTo(HaveOccurred(), "the Device carries the enrollment, signed by the device CA")
		Expect(rec.Token).To(Equal("record"))
		Expect(rec.Key).To(HavePrefix("sha256:"))
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(device), device)).To(Succeed())
			g.Expect(device.Status.Phase).To(Equal(mdmv1alpha1.DeviceEnrolled))
			g.Expect(device.Status.EnrollmentToken).To(Equal("record"))
			g.Expect(device.Status.EnrollmentKey).To(Equal(rec.Key))
			g.Expect(device.Status.EnrolledAt).NotTo(BeNil())
			g.Expect(device.Status.EnrolledAt.Time.Equal(rec.At)).To(BeTrue())
			g.Expect(meta.IsStatusConditionTrue(device.Status.Conditions, mdmv1alpha1.DeviceConditionEnrolled)).To(BeTrue())
			g.Expect(meta.IsStatusConditionTrue(device.Status.Conditions, mdmv1alpha1.ConditionReady)).To(BeTrue())
		}).Should(Succeed())
		// The watch may show the controller's write a moment after a read.
		Eventually(writes).Should(HaveLen(2))
		Consistently(writes, 2*time.Second).Should(HaveLen(2),
			"the Device's create and the controller's status write; the enrollment writes no status of its own")
	})

	It("writes a Device that enrolls and connects three times: its create, the opening with the first report, and the controller's status", func() {
		token := linuxToken(ns, "opening", true)
		value, pin := issuedToken(ctx, token)
		writes := watchDeviceWrites(ctx, ns, "sn-opening")
		a, _ := newAgent(value, pin, "SN-OPENING")
		stop := run(a)
		defer stop()
		device := &mdmv1alpha1.Device{}
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sn-opening"}, device)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(device.Status.Conditions, mdmv1alpha1.DeviceConditionConnected)).To(BeTrue())
			g.Expect(device.Status.Connection).NotTo(BeNil())
			g.Expect(device.Status.LastSeen).NotTo(BeNil())
			g.Expect(device.Status.DeviceInfo).NotTo(BeNil())
			g.Expect(device.Status.AppliedConfigGeneration).To(Equal(device.Generation))
		}).Should(Succeed())
		Eventually(func() []string { return gatewayStatusWrites(writes()) }).Should(HaveLen(1))
		Consistently(func() []string { return gatewayStatusWrites(writes()) }, 2*time.Second).Should(HaveLen(1),
			"all writes: %v", writes())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(device), device)).To(Succeed())
			g.Expect(device.Status.Phase).To(Equal(mdmv1alpha1.DeviceEnrolled))
			g.Expect(meta.IsStatusConditionTrue(device.Status.Conditions, mdmv1alpha1.ConditionReady)).To(BeTrue())
		}).Should(Succeed())
		Eventually(writes).Should(HaveLen(3))
		Consistently(writes, 2*time.Second).Should(HaveLen(3),
			"the controller copies the enrollment with the conditions the connection settles, in one write")
	})

	It("shows Disabled a device that reports it before its enrollment record is copied", func() {
		value, pin := issuedToken(ctx, linuxToken(ns, "disabled-early", true))
		a, dev := newAgent(value, pin, "SN-EARLY")
		Expect(a.Enroll(ctx)).To(Succeed())
		// Disabled while the controller waits for the agent's connection
		// to copy the record: the agent's first report says Disabled.
		device := &mdmv1alpha1.Device{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sn-early"}, device)).To(Succeed())
		Expect(device.Status.Phase).To(BeEmpty(), "the record is still pending")
		device.Spec.State = mdmv1alpha1.DeviceStateDisabled
		Expect(k8sClient.Update(ctx, device)).To(Succeed())
		stop := run(a)
		defer stop()
		Eventually(dev.Disabled).Should(BeTrue())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(device), device)).To(Succeed())
			g.Expect(device.Status.EnrolledAt).NotTo(BeNil())
			g.Expect(device.Status.Phase).To(Equal(mdmv1alpha1.DeviceDisabled))
		}).WithTimeout(20 * time.Second).Should(Succeed())
	})

	It("claims a pre-registered Device with the same serial number and leaves its spec alone", func() {
		pre := &mdmv1alpha1.Device{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "desk-7"},
			Spec:       mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformLinux, SerialNumber: "DESK-7", Owner: "from-git"},
		}
		Expect(k8sClient.Create(ctx, pre)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pre), pre)).To(Succeed())
			g.Expect(pre.Status.Phase).To(Equal(mdmv1alpha1.DeviceRegistered))
		}).Should(Succeed())
		token := linuxToken(ns, "claim", false)
		token.Spec.Owner = "from-token"
		value, pin := issuedToken(ctx, token)
		a, _ := newAgent(value, pin, "DESK-7")
		Expect(a.Enroll(ctx)).To(Succeed())
		Expect(a.Identity().Name).To(Equal("desk-7"))
		Expect(a.Identity().UID).To(Equal(string(pre.UID)))
		after := &mdmv1alpha1.Device{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pre), after)).To(Succeed())
		Expect(after.Spec).To(Equal(pre.Spec))
		Expect(after.Status.Phase).To(Equal(mdmv1alpha1.DeviceEnrolled))
		list := &mdmv1alpha1.DeviceList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		Expect(list.Items).To(HaveLen(1))
	})

	It("enrolls exactly one device when 100 race for a one-time token", func() {
		value, _ := issuedToken(ctx, linuxToken(ns, "race", false))
		c := plainClient()
		var wg sync.WaitGroup
		errs := make([]error, 100)
		for i := range errs {
			req := enrollRequest(value, "")
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = c.Enroll(ctx, req)
			}()
		}
		wg.Wait()
		ok, refused := 0, 0
		var codes []string
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case connect.CodeOf(err) == connect.CodeUnauthenticated:
				refused++
			}
			codes = append(codes, connect.CodeOf(err).String())
		}
		Expect(ok).To(Equal(1), "codes: %v", codes)
		Expect(refused).To(Equal(99), "codes: %v", codes)
		list := &mdmv1alpha1.DeviceList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		Expect(list.Items).To(HaveLen(1))
	})

	It("enrolls a burst on one perpetual token without writing the token for each device", func() {
		const burst = 60
		token := linuxToken(ns, "burst", true)
		value, _ := issuedToken(ctx, token)
		tokenWrites := watchWrites(ctx, token)
		writesBefore := managerWrites.Load()
		c := plainClient()
		var wg sync.WaitGroup
		errs := make([]error, burst)
		for i := range burst {
			req := enrollRequest(value, fmt.Sprintf("burst-%03d", i))
			wg.Go(func() { _, errs[i] = c.Enroll(ctx, req) })
		}
		wg.Wait()
		for _, err := range errs {
			Expect(err).NotTo(HaveOccurred())
		}
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
			g.Expect(token.Status.EnrollmentCount).To(Equal(int32(burst)))
		}, 30*time.Second).Should(Succeed(), "the controller counts the Devices")
		GinkgoWriter.Printf("%d enrollments: %d token writes, %.1f manager writes per device\n",
			burst, tokenWrites(), float64(managerWrites.Load()-writesBefore)/burst)
		// The count is written at most every 10s while it changes.
		Expect(tokenWrites()).To(BeNumerically("<=", 4), "writes to the token while %d devices enrolled", burst)
		list := &mdmv1alpha1.DeviceList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns), client.MatchingFields{"status.enrollmentToken": "burst"})).To(Succeed())
		Expect(list.Items).To(HaveLen(burst), "the Devices are found by the token they enrolled with, on the apiserver")

		By("restarting the manager: the count is the Devices', never counted twice")
		Expect(env.RestartManager()).To(Succeed())
		Eventually(func() error { _, err := plainClient().Enroll(ctx, enrollRequest(value, "burst-after")); return err }).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
			g.Expect(token.Status.EnrollmentCount).To(Equal(int32(burst + 1)))
		}, 30*time.Second).Should(Succeed())
		Consistently(func() int32 {
			_ = k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)
			return token.Status.EnrollmentCount
		}, 2*time.Second).Should(Equal(int32(burst + 1)))
	})

	It("answers an enrollment retried with the same key with the same Device, and leaves no orphan", func() {
		c := plainClient()
		for _, tc := range []struct {
			token  string
			serial string
		}{{"once", ""}, {"fleet", "SN-RETRY"}} {
			value, _ := issuedToken(ctx, linuxToken(ns, tc.token, tc.token == "fleet"))
			req := enrollRequest(value, tc.serial)
			first, err := c.Enroll(ctx, req)
			Expect(err).NotTo(HaveOccurred())
			// The answer was lost; the agent tries again with the same key.
			again, err := c.Enroll(ctx, req)
			Expect(err).NotTo(HaveOccurred(), "token %s", tc.token)
			Expect(again.Msg.GetDeviceUid()).To(Equal(first.Msg.GetDeviceUid()))
			Expect(again.Msg.GetDeviceName()).To(Equal(first.Msg.GetDeviceName()))
			cert, err := pki.ParseCertificatePEM([]byte(again.Msg.GetCertificatePem()))
			Expect(err).NotTo(HaveOccurred())
			id, err := pki.IdentityFromCertificate(cert)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(id.UID)).To(Equal(first.Msg.GetDeviceUid()))
		}
		list := &mdmv1alpha1.DeviceList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		Expect(list.Items).To(HaveLen(2), "one Device per agent, however often it retried")

		// Another key is another device: the spent one-time token refuses it.
		once := &mdmv1alpha1.EnrollmentToken{}
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "once"}, once)).To(Succeed())
			g.Expect(once.Status.Phase).To(Equal(mdmv1alpha1.TokenDone))
			g.Expect(once.Status.EnrollmentCount).To(Equal(int32(1)))
		}).Should(Succeed())
	})

	It("refuses unknown, expired and revoked tokens, malformed CSRs and the wrong platform", func() {
		c := plainClient()
		unknown, err := enrollment.NewToken()
		Expect(err).NotTo(HaveOccurred())
		_, err = c.Enroll(ctx, enrollRequest(unknown, ""))
		Expect(connect.CodeOf(err)).To(Equal(connect.CodeUnauthenticated))
		_, err = c.Enroll(ctx, enrollRequest("not-a-token", ""))
		Expect(connect.CodeOf(err)).To(Equal(connect.CodeUnauthenticated))

		short := linuxToken(ns, "short", true)
		short.Spec.TTL = &metav1.Duration{Duration: 2 * time.Second}
		shortValue, _ := issuedToken(ctx, short)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(short), short)).To(Succeed())
			g.Expect(short.Status.Phase).To(Equal(mdmv1alpha1.TokenExpired))
		}).Should(Succeed())
		_, err = c.Enroll(ctx, enrollRequest(shortValue, ""))
		Expect(connect.CodeOf(err)).To(Equal(connect.CodeUnauthenticated))

		revoked := linuxToken(ns, "revoked", true)
		revokedValue, _ := issuedToken(ctx, revoked)
		before := revoked.DeepCopy()
		revoked.Spec.Revoked = true
		Expect(k8sClient.Patch(ctx, revoked, client.MergeFrom(before))).To(Succeed())
		// At once: the gateway re-reads the token, so its cache lagging
		// behind the revocation lets no device in.
		_, err = c.Enroll(ctx, enrollRequest(revokedValue, ""))
		Expect(connect.CodeOf(err)).To(Equal(connect.CodeUnauthenticated))

		good, _ := issuedToken(ctx, linuxToken(ns, "good", true))
		bad := enrollRequest(good, "")
		bad.Msg.CsrPem = "-----BEGIN CERTIFICATE REQUEST-----\nnonsense\n-----END CERTIFICATE REQUEST-----\n"
		_, err = c.Enroll(ctx, bad)
		Expect(connect.CodeOf(err)).To(Equal(connect.CodeInvalidArgument))
		Expect(err.Error()).To(ContainSubstring("csr_pem"))

		wrong := enrollRequest(good, "")
		wrong.Msg.DeviceInfo.Platform = "IOS"
		_, err = c.Enroll(ctx, wrong)
		Expect(connect.CodeOf(err)).To(Equal(connect.CodeFailedPrecondition))
		Expect(err.Error()).To(ContainSubstring("enrolls Linux devices, not IOS"))

		list := &mdmv1alpha1.DeviceList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		Expect(list.Items).To(BeEmpty(), "no refused enrollment may leave a Device behind")
	})
})

// watchWrites counts the writes the apiserver stores for obj from now on.
func watchWrites(ctx context.Context, obj client.Object) func() int {
	var n atomic.Int32
	stop, err := testenv.Watch(ctx, env.Config, env.Scheme, &mdmv1alpha1.EnrollmentTokenList{}, func(ev watch.Event) {
		if ev.Type == watch.Modified {
			n.Add(1)
		}
	}, client.InNamespace(obj.GetNamespace()), client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", obj.GetName())})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(stop)
	return func() int { return int(n.Load()) }
}

// watchDeviceWrites lists the writes the apiserver makes to the Device
// ns/name, its create included, from now on: each as its event, the field
// managers whose entry it changed and the phase, so that a failure says who
// wrote.
func watchDeviceWrites(ctx context.Context, ns, name string) func() []string {
	var mu sync.Mutex
	var writes []string
	seen := map[string]bool{}
	prev := &mdmv1alpha1.Device{}
	stop, err := testenv.Watch(ctx, env.Config, env.Scheme, &mdmv1alpha1.DeviceList{}, func(ev watch.Event) {
		d, ok := ev.Object.(*mdmv1alpha1.Device)
		if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		// A write is a resourceVersion: an event seen again is not one.
		if seen[d.ResourceVersion] {
			return
		}
		seen[d.ResourceVersion] = true
		writes = append(writes, fmt.Sprintf("%s rv=%s by %v, phase %q", ev.Type, d.ResourceVersion, writers(prev, d), d.Status.Phase))
		prev = d
	}, client.InNamespace(ns), client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", name)})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(stop)
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(writes)
	}
}

// writers names the field managers whose entry changed from before to
// after: new, or with other fields or another time.
func writers(before, after *mdmv1alpha1.Device) []string {
	var out []string
	for _, m := range after.ManagedFields {
		i := slices.IndexFunc(before.ManagedFields, func(b metav1.ManagedFieldsEntry) bool {
			return b.Manager == m.Manager && b.Operation == m.Operation && b.Subresource == m.Subresource
		})
		if i < 0 || !equality.Semantic.DeepEqual(before.ManagedFields[i], m) {
			out = append(out, fmt.Sprintf("%s/%s/%s", m.Manager, m.Operation, m.Subresource))
		}
	}
	return out
}

// gatewayStatusWrites are the writes among writes that the gateway's
// connection and report managers made.
func gatewayStatusWrites(writes []string) []string {
	var out []string
	for _, w := range writes {
		if strings.Contains(w, "kubemdm-gateway-presence/") || strings.Contains(w, "kubemdm-gateway-report/") {
			out = append(out, w)
		}
	}
	return out
}
