package gateway_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/agent"
	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	"github.com/kubemdm/kubemdm/api/agent/v1/agentv1connect"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/controllers"
	"github.com/kubemdm/kubemdm/internal/pki"
)

// queueCommand creates a DeviceAction and queues it for the devices, as the
// DeviceAction controller does: the queue is the action's status.
func queueCommand(ctx context.Context, ns, name string, action mdmv1alpha1.ActionType, devices ...string) *mdmv1alpha1.DeviceAction {
	a := &mdmv1alpha1.DeviceAction{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       mdmv1alpha1.DeviceActionSpec{Action: action, Devices: devices},
	}
	if action == mdmv1alpha1.ActionSendMessage {
		a.Spec.Parameters = &mdmv1alpha1.ActionParameters{Message: &mdmv1alpha1.MessageParameters{Title: "Hi", Body: "Hello"}}
	}
	Expect(k8sClient.Create(ctx, a)).To(Succeed())
	now := metav1.Now()
	queued := metav1.NewMicroTime(now.Time)
	a.Status.Phase = mdmv1alpha1.ActionRunning
	a.Status.StartTime, a.Status.QueuedAt = &now, &queued
	for _, name := range devices {
		row := mdmv1alpha1.DeviceResult{Name: name, Phase: mdmv1alpha1.CommandQueued, QueuedAt: &now}
		d := &mdmv1alpha1.Device{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err == nil {
			row.DeviceUID = d.UID
		}
		a.Status.Devices = append(a.Status.Devices, row)
	}
	Expect(k8sClient.Status().Update(ctx, a)).To(Succeed())
	return a
}

func row(ctx context.Context, a *mdmv1alpha1.DeviceAction, device string) func(g Gomega) mdmv1alpha1.DeviceResult {
	return func(g Gomega) mdmv1alpha1.DeviceResult {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		for _, r := range a.Status.Devices {
			if r.Name == device {
				return r
			}
		}
		return mdmv1alpha1.DeviceResult{}
	}
}

func executedIDs(dev *agent.Simulated) []string {
	var ids []string
	for _, c := range dev.Executed() {
		ids = append(ids, c.GetId())
	}
	return ids
}

var _ = Describe("Commands", func() {
	ctx := context.Background()
	var (
		ns       string
		aliceA   *agent.Agent
		alice    *agent.Simulated
		bobA     *agent.Agent
		bobDevID string
	)
	BeforeEach(func() {
		ns = newNamespace(ctx)
		value, pin := issuedToken(ctx, linuxToken(ns, "fleet", true))
		aliceA, alice = newAgent(value, pin, "ALICE")
		Expect(aliceA.Enroll(ctx)).To(Succeed())
		bobA, _ = newAgent(value, pin, "BOB")
		Expect(bobA.Enroll(ctx)).To(Succeed())
		bobDevID = bobA.Identity().Name
	})

	It("delivers a command queued while the device was offline once it connects, and only once", func() {
		a := queueCommand(ctx, ns, "lock-offline", mdmv1alpha1.ActionLock, "alice")
		Consistently(row(ctx, a, "alice")).WithTimeout(300 * time.Millisecond).Should(HaveField("Phase", mdmv1alpha1.CommandQueued))

		stop := run(aliceA)
		Eventually(row(ctx, a, "alice")).Should(SatisfyAll(
			HaveField("Phase", mdmv1alpha1.CommandSucceeded),
			HaveField("Code", int32(0)),
			HaveField("DeliveredAt", Not(BeNil())),
			HaveField("CompletedAt", Not(BeNil())),
		))
		Expect(executedIDs(alice)).To(Equal([]string{string(a.UID)}))
		stop()

		// A reconnect finds nothing open: the command is not run again.
		stop = run(aliceA)
		Consistently(func() []string { return executedIDs(alice) }).WithTimeout(500 * time.Millisecond).Should(HaveLen(1))
		stop()
	})

	It("pushes a command to an online device without polling", func() {
		stop := run(aliceA)
		defer stop()
		device := &mdmv1alpha1.Device{}
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "alice"}, device)).To(Succeed())
			g.Expect(device.Status.Conditions).To(ContainElement(SatisfyAll(
				HaveField("Type", mdmv1alpha1.DeviceConditionConnected), HaveField("Status", metav1.ConditionTrue))))
		}).Should(Succeed())

		// The agent only polls on reconnect, and its heartbeat is an hour:
		// the command can only arrive on the open stream.
		a := queueCommand(ctx, ns, "message", mdmv1alpha1.ActionSendMessage, "alice")
		Eventually(func() []string { return executedIDs(alice) }).WithTimeout(3 * time.Second).Should(ContainElement(string(a.UID)))
		Eventually(row(ctx, a, "alice")).Should(HaveField("Phase", mdmv1alpha1.CommandSucceeded))
		Expect(alice.Executed()[0].GetParameters().GetMessageTitle()).To(Equal("Hi"))
	})

	It("runs the commands of an offline device in the order their actions were created", func() {
		var want []string
		for i := range 24 {
			action := []mdmv1alpha1.ActionType{mdmv1alpha1.ActionLock, mdmv1alpha1.ActionUnlock}[i%2]
			want = append(want, string(queueCommand(ctx, ns, fmt.Sprintf("z%02d-%s", 24-i, strings.ToLower(string(action))), action, "alice").UID))
		}
		stop := run(aliceA)
		defer stop()
		Eventually(func() []string { return executedIDs(alice) }).Should(HaveLen(len(want)))
		Expect(executedIDs(alice)).To(Equal(want), "names sort the other way round: only the creation order gives this")
	})

	It("drains a backlog of any size, in order, marking a row Delivered only once sent", func() {
		const backlog = 300
		var want []string
		for i := range backlog {
			want = append(want, string(queueCommand(ctx, ns, fmt.Sprintf("sync-%03d", i), mdmv1alpha1.ActionSync, "alice").UID))
		}
		stop := run(aliceA)
		defer stop()
		Eventually(func() []string { return executedIDs(alice) }).WithTimeout(60 * time.Second).Should(HaveLen(backlog))
		Expect(executedIDs(alice)).To(Equal(want))
		Eventually(func(g Gomega) {
			list := &mdmv1alpha1.DeviceActionList{}
			g.Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			for _, a := range list.Items {
				g.Expect(a.Status.Devices[0].Phase).To(Equal(mdmv1alpha1.CommandSucceeded), a.Name)
			}
		}).WithTimeout(60 * time.Second).Should(Succeed())
	})

	It("never gives the command of a deleted Device to a new one of the same name", func() {
		old := &mdmv1alpha1.Device{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: bobDevID}, old)).To(Succeed())
		a := queueCommand(ctx, ns, "lock-old-bob", mdmv1alpha1.ActionLock, bobDevID)
		Expect(a.Status.Devices[0].DeviceUID).To(Equal(old.UID))

		// The phone is replaced: its Device goes, and a phone with the same
		// serial number enrolls as a new Device of the same name.
		Expect(k8sClient.Patch(ctx, old, client.RawPatch(types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"`+controllers.AnnotationForceDelete+`":"true"}}}`)))).To(Succeed())
		Expect(k8sClient.Delete(ctx, old)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(old), &mdmv1alpha1.Device{}))
		}).Should(BeTrue())
		value, pin := issuedToken(ctx, linuxToken(ns, "again", true))
		newBobA, newBob := newAgent(value, pin, "BOB")
		Eventually(func() error { return newBobA.Enroll(ctx) }).Should(Succeed())
		Expect(newBobA.Identity().Name).To(Equal(bobDevID))
		Expect(newBobA.Identity().UID).NotTo(Equal(string(old.UID)))

		stop := run(newBobA)
		defer stop()
		Consistently(newBob.Executed).WithTimeout(time.Second).Should(BeEmpty())
		c, done, err := newBobA.Client()
		Expect(err).NotTo(HaveOccurred())
		defer done()
		poll, err := c.Poll(ctx, connect.NewRequest(&agentv1.PollRequest{}))
		Expect(err).NotTo(HaveOccurred())
		Expect(poll.Msg.GetCommands()).To(BeEmpty())
		_, err = c.CompleteCommand(ctx, connect.NewRequest(&agentv1.CompleteCommandRequest{
			CommandId: string(a.UID), Outcome: agentv1.Outcome_OUTCOME_SUCCEEDED}))
		Expect(connect.CodeOf(err)).To(Equal(connect.CodePermissionDenied))
		Expect(row(ctx, a, bobDevID)(Default)).To(HaveField("Phase", mdmv1alpha1.CommandQueued))
	})

	It("lets a device answer only its own commands", func() {
		a := queueCommand(ctx, ns, "lock-bob", mdmv1alpha1.ActionLock, bobDevID)
		c, done, err := aliceA.Client()
		Expect(err).NotTo(HaveOccurred())
		defer done()
		_, err = c.CompleteCommand(ctx, connect.NewRequest(&agentv1.CompleteCommandRequest{
			CommandId: string(a.UID), Outcome: agentv1.Outcome_OUTCOME_SUCCEEDED}))
		Expect(connect.CodeOf(err)).To(Equal(connect.CodePermissionDenied))
		poll, err := c.Poll(ctx, connect.NewRequest(&agentv1.PollRequest{}))
		Expect(err).NotTo(HaveOccurred())
		Expect(poll.Msg.GetCommands()).To(BeEmpty(), "alice must not see bob's command")
		Expect(row(ctx, a, bobDevID)(Default)).To(HaveField("Phase", mdmv1alpha1.CommandQueued))
	})

	It("changes nothing on a repeated CompleteCommand", func() {
		a := queueCommand(ctx, ns, "sync", mdmv1alpha1.ActionSync, "alice")
		c, done, err := aliceA.Client()
		Expect(err).NotTo(HaveOccurred())
		defer done()
		req := &agentv1.CompleteCommandRequest{CommandId: string(a.UID), Outcome: agentv1.Outcome_OUTCOME_SUCCEEDED, Message: "synced"}
		_, err = c.CompleteCommand(ctx, connect.NewRequest(req))
		Expect(err).NotTo(HaveOccurred())
		Eventually(row(ctx, a, "alice")).Should(HaveField("Phase", mdmv1alpha1.CommandSucceeded))
		rv := a.ResourceVersion
		Eventually(func(g Gomega) {
			_, err := c.CompleteCommand(ctx, connect.NewRequest(req))
			g.Expect(err).NotTo(HaveOccurred())
		}).Should(Succeed())
		Consistently(func(g Gomega) string {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			return a.ResourceVersion
		}).WithTimeout(300 * time.Millisecond).Should(Equal(rv))

		// A contradicting late answer is refused, not recorded.
		req.Outcome, req.Code = agentv1.Outcome_OUTCOME_FAILED, 13
		_, err = c.CompleteCommand(ctx, connect.NewRequest(req))
		Expect(connect.CodeOf(err)).To(Equal(connect.CodeFailedPrecondition))
	})

	It("refuses a client certificate from another CA during the TLS handshake", func() {
		otherCert, otherKey, err := pki.NewCA("impostor", time.Hour)
		Expect(err).NotTo(HaveOccurred())
		impostor, err := tls.X509KeyPair(otherCert, otherKey)
		Expect(err).NotTo(HaveOccurred())
		// GetClientCertificate sends the certificate even though the server
		// asks for its own CA: an attacker's client would do the same.
		tlsCfg := &tls.Config{RootCAs: pki.PoolFromPEM(env.CABundle), ServerName: "127.0.0.1",
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &impostor, nil }}
		c := agentv1connect.NewAgentServiceClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}, "https://"+env.GatewayAddr)
		_, err = c.Poll(ctx, connect.NewRequest(&agentv1.PollRequest{}))
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(Or(ContainSubstring("bad certificate"), ContainSubstring("unknown certificate authority"), ContainSubstring("certificate required")))

		// Without any certificate the TLS layer lets Enroll through, and
		// every other call is refused by the gateway.
		_, err = plainClient().Poll(ctx, connect.NewRequest(&agentv1.PollRequest{}))
		Expect(connect.CodeOf(err)).To(Equal(connect.CodeUnauthenticated))
	})

	It("ends what a device missed with a Keepalive that names the interval", func() {
		queueCommand(ctx, ns, "lock-before", mdmv1alpha1.ActionLock, "alice")
		c, done, err := aliceA.Client()
		Expect(err).NotTo(HaveOccurred())
		defer done()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		stream, err := c.Subscribe(sctx, connect.NewRequest(&agentv1.SubscribeRequest{}))
		Expect(err).NotTo(HaveOccurred())
		defer stream.Close()
		var kinds []string
		for stream.Receive() {
			switch m := stream.Msg().GetMessage().(type) {
			case *agentv1.SubscribeResponse_Config:
				kinds = append(kinds, "config")
			case *agentv1.SubscribeResponse_Command:
				kinds = append(kinds, "command "+m.Command.GetAction())
			case *agentv1.SubscribeResponse_Keepalive:
				kinds = append(kinds, "keepalive")
				Expect(m.Keepalive.GetInterval().AsDuration()).To(Equal(30 * time.Second))
			}
			if kinds[len(kinds)-1] == "keepalive" {
				break
			}
		}
		Expect(kinds).To(Equal([]string{"config", "command Lock", "keepalive"}))
	})

	It("refuses a device that is no longer managed", func() {
		device := &mdmv1alpha1.Device{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "alice"}, device)).To(Succeed())
		before := device.DeepCopy()
		device.Status.Phase = mdmv1alpha1.DeviceRetired
		Expect(k8sClient.Status().Patch(ctx, device, client.MergeFrom(before))).To(Succeed())
		c, done, err := aliceA.Client()
		Expect(err).NotTo(HaveOccurred())
		defer done()
		Eventually(func(g Gomega) {
			_, err := c.Poll(ctx, connect.NewRequest(&agentv1.PollRequest{}))
			g.Expect(connect.CodeOf(err)).To(Equal(connect.CodePermissionDenied))
		}).Should(Succeed())
	})
})

var _ = Describe("Configuration, reports and certificates", func() {
	ctx := context.Background()
	var (
		ns  string
		a   *agent.Agent
		dev *agent.Simulated
	)
	BeforeEach(func() {
		ns = newNamespace(ctx)
		value, pin := issuedToken(ctx, linuxToken(ns, "fleet", true))
		a, dev = newAgent(value, pin, "CAROL")
		dev.FailConfigurations = map[string]bool{"broken": true}
		Expect(a.Enroll(ctx)).To(Succeed())
	})

	It("pushes a spec change to the online device", func() {
		stop := run(a)
		defer stop()
		Eventually(func() int64 { return dev.Config().GetGeneration() }).Should(Equal(int64(1)))

		device := &mdmv1alpha1.Device{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "carol"}, device)).To(Succeed())
		before := device.DeepCopy()
		device.Spec.Owner = "dave@example.com"
		Expect(k8sClient.Patch(ctx, device, client.MergeFrom(before))).To(Succeed())
		Eventually(func() int64 { return dev.Config().GetGeneration() }).WithTimeout(3 * time.Second).Should(Equal(device.Generation))
		Expect(dev.Config().GetOwner()).To(Equal("dave@example.com"))
		Eventually(func() string { return dev.Observe().Owner }).Should(Equal("dave@example.com"))
	})

	It("writes nothing for heartbeats that repeat what the status already says", func() {
		c, done, err := a.Client()
		Expect(err).NotTo(HaveOccurred())
		defer done()
		facts := &agentv1.Facts{DeviceInfo: &agentv1.DeviceInfo{Model: "Sim 1", OsVersion: "6.1"}}
		_, err = c.ReportStatus(ctx, connect.NewRequest(&agentv1.ReportStatusRequest{Facts: facts}))
		Expect(err).NotTo(HaveOccurred())
		device := &mdmv1alpha1.Device{}
		// The first sighting is written once; wait for it to settle.
		var rv string
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "carol"}, device)).To(Succeed())
			g.Expect(device.Status.LastSeen).NotTo(BeNil())
			g.Expect(device.Status.DeviceInfo.OSVersion).To(Equal("6.1"))
			rv = device.ResourceVersion
		}).Should(Succeed())
		Consistently(func(g Gomega) string {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(device), device)).To(Succeed())
			return device.ResourceVersion
		}).WithTimeout(time.Second).Should(Equal(rv), "the device settled")

		// Counted as requests, not resourceVersions: the apiserver keeps the
		// resourceVersion of a write that changes nothing, but the request
		// still costs it.
		before := namespaceWrites(ns)
		for range 50 {
			_, err = c.ReportStatus(ctx, connect.NewRequest(&agentv1.ReportStatusRequest{Facts: facts}))
			Expect(err).NotTo(HaveOccurred())
		}
		Expect(namespaceWrites(ns)-before).To(BeZero(), "50 repeated reports sent writes to the apiserver")
		Consistently(func(g Gomega) string {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(device), device)).To(Succeed())
			return device.ResourceVersion
		}).WithTimeout(time.Second).Should(Equal(rv), "50 heartbeats within the flush interval wrote nothing")

		// A changed fact is written.
		facts.DeviceInfo.OsVersion = "6.2"
		_, err = c.ReportStatus(ctx, connect.NewRequest(&agentv1.ReportStatusRequest{Facts: facts}))
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(device), device)).To(Succeed())
			g.Expect(device.Status.DeviceInfo.OSVersion).To(Equal("6.2"))
		}).Should(Succeed())
	})

	It("renews the certificate for a new key", func() {
		c, done, err := a.Client()
		Expect(err).NotTo(HaveOccurred())
		_, err = c.Poll(ctx, connect.NewRequest(&agentv1.PollRequest{}))
		done()
		Expect(err).NotTo(HaveOccurred())
		Expect(a.Renew(ctx)).To(Succeed())
		c, done, err = a.Client()
		Expect(err).NotTo(HaveOccurred())
		defer done()
		_, err = c.Poll(ctx, connect.NewRequest(&agentv1.PollRequest{}))
		Expect(err).NotTo(HaveOccurred(), "the renewed certificate identifies the same device")
	})

	It("refuses malformed reports and results with InvalidArgument", func() {
		c, done, err := a.Client()
		Expect(err).NotTo(HaveOccurred())
		defer done()
		_, err = c.ReportStatus(ctx, connect.NewRequest(&agentv1.ReportStatusRequest{Facts: &agentv1.Facts{
			Configurations: []*agentv1.ConfigurationState{{Name: "x", State: "Sideways"}}}}))
		Expect(connect.CodeOf(err)).To(Equal(connect.CodeInvalidArgument))
		_, err = c.CompleteCommand(ctx, connect.NewRequest(&agentv1.CompleteCommandRequest{CommandId: "x"}))
		Expect(connect.CodeOf(err)).To(Equal(connect.CodeInvalidArgument))
		_, err = c.CompleteCommand(ctx, connect.NewRequest(&agentv1.CompleteCommandRequest{CommandId: "x", Outcome: agentv1.Outcome_OUTCOME_FAILED, Code: 99}))
		Expect(connect.CodeOf(err)).To(Equal(connect.CodeInvalidArgument))
	})

	It("records what the device observes even where it breaks the rules of the desired state", func() {
		c, done, err := a.Client()
		Expect(err).NotTo(HaveOccurred())
		defer done()
		// Kiosk on without an app and a phone number that is not one are
		// refused in a spec, but they are what this device says it shows.
		odd := &agentv1.Facts{
			Kiosk:    &agentv1.Kiosk{Enabled: true},
			LostMode: &agentv1.LostMode{Enabled: true, PhoneNumber: "ask at the front desk"},
		}
		_, err = c.ReportStatus(ctx, connect.NewRequest(&agentv1.ReportStatusRequest{Facts: odd}))
		Expect(err).NotTo(HaveOccurred())
		device := &mdmv1alpha1.Device{}
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "carol"}, device)).To(Succeed())
			g.Expect(device.Status.Kiosk).To(Equal(&mdmv1alpha1.KioskStatus{Enabled: true}))
			g.Expect(device.Status.LostMode).To(Equal(&mdmv1alpha1.LostModeStatus{Enabled: true, PhoneNumber: "ask at the front desk"}))
		}).Should(Succeed())

		// Over the status schema's limits: refused, naming the field, and
		// the next good report is written as usual.
		long := &agentv1.Facts{Configurations: []*agentv1.ConfigurationState{
			{Name: "wifi", State: "Failed", Message: strings.Repeat("x", mdmv1alpha1.MaxReportedMessage+1)}}}
		_, err = c.ReportStatus(ctx, connect.NewRequest(&agentv1.ReportStatusRequest{Facts: long}))
		Expect(connect.CodeOf(err)).To(Equal(connect.CodeInvalidArgument))
		Expect(err.Error()).To(ContainSubstring("facts.configurations[0].message is longer than 1024 bytes"))
		_, err = c.ReportStatus(ctx, connect.NewRequest(&agentv1.ReportStatusRequest{Facts: &agentv1.Facts{
			Kiosk:          &agentv1.Kiosk{Enabled: true, App: "com.example.after"},
			Configurations: []*agentv1.ConfigurationState{{Name: "wifi", State: "Failed", Message: "no signal"}}}}))
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(device), device)).To(Succeed())
			g.Expect(device.Status.Kiosk).To(Equal(&mdmv1alpha1.KioskStatus{Enabled: true, App: "com.example.after"}))
			// Rows are for the configurations that target the device; a
			// report about another one adds none.
			g.Expect(device.Status.Configurations).To(BeEmpty())
		}).Should(Succeed())
	})
})
