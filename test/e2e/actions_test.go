package e2e

import (
	"context"
	"strings"
	"time"

	"connectrpc.com/connect"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/agent"
	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

var _ = Describe("DeviceAction", func() {
	ctx := context.Background()

	It("locks an online device and records the result per device", func() {
		f := newFleet(ctx)
		dev := f.enroll(ctx, "lab-1")
		f.connect("lab-1")
		a := f.action(ctx, "lock", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock, Devices: []string{"lab-1"}})
		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionSucceeded))
		row := rowOf(a, "lab-1")
		Expect(row.Phase).To(Equal(mdmv1alpha1.CommandSucceeded))
		Expect(row.QueuedAt).NotTo(BeNil())
		Expect(row.DeliveredAt).NotTo(BeNil())
		Expect(row.CompletedAt).NotTo(BeNil())
		Expect(a.Status.Summary).To(Equal(&mdmv1alpha1.ActionSummary{Total: 1, Succeeded: 1}))
		Expect(a.Status.StartTime).NotTo(BeNil())
		Expect(a.Status.CompletionTime).NotTo(BeNil())
		Expect(meta.IsStatusConditionTrue(a.Status.Conditions, mdmv1alpha1.ConditionReady)).To(BeTrue())
		Expect(dev.Executed()).To(HaveLen(1))
		Expect(dev.Executed()[0].GetAction()).To(Equal("Lock"))
	})

	It("gives a missing device NotFound and an ineligible one its code, and goes on with the rest", func() {
		f := newFleet(ctx)
		f.enroll(ctx, "ok-1")
		f.connect("ok-1")
		Expect(k8sClient.Create(ctx, &mdmv1alpha1.Device{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "never-enrolled"},
			Spec:       mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformLinux}})).To(Succeed())
		Expect(k8sClient.Create(ctx, &mdmv1alpha1.Device{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "an-iphone"},
			Spec:       mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformIOS}})).To(Succeed())
		a := f.action(ctx, "kiosk", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionRestart,
			Devices: []string{"ok-1", "ghost", "never-enrolled"}})
		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionPartiallySucceeded))
		Expect(rowOf(a, "ok-1")).To(SatisfyAll(HaveField("Phase", mdmv1alpha1.CommandSucceeded), HaveField("Code", int32(0))))
		Expect(rowOf(a, "ghost")).To(SatisfyAll(HaveField("Phase", mdmv1alpha1.CommandFailed), HaveField("Code", mdmv1alpha1.CodeNotFound)))
		Expect(rowOf(a, "never-enrolled")).To(SatisfyAll(HaveField("Phase", mdmv1alpha1.CommandIneligible),
			HaveField("Code", mdmv1alpha1.CodeFailedPrecondition), HaveField("Message", ContainSubstring("not enrolled"))))
		Expect(a.Status.Summary).To(Equal(&mdmv1alpha1.ActionSummary{Total: 3, Succeeded: 1, Failed: 1, Ineligible: 1}))

		kiosk := f.action(ctx, "kiosk-ios", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionEnterKiosk,
			Devices: []string{"an-iphone"}, Parameters: &mdmv1alpha1.ActionParameters{KioskApp: "com.example.app"}})
		Eventually(finished(ctx, kiosk)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionFailed))
		Expect(rowOf(kiosk, "an-iphone")).To(HaveField("Code", mdmv1alpha1.CodeUnimplemented))
	})

	It("fails the row of a Device deleted or replaced before its command ran, and never runs it on the new one", func() {
		f := newFleet(ctx)
		f.enroll(ctx, "swap-1")
		f.enroll(ctx, "swap-2")
		old1, old2 := device(ctx, f.ns, "swap-1"), device(ctx, f.ns, "swap-2")
		a := f.action(ctx, "lock-swapped", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock, Devices: []string{"swap-1", "swap-2"}})
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(rowOf(a, "swap-1")).To(SatisfyAll(HaveField("Phase", mdmv1alpha1.CommandQueued), HaveField("DeviceUID", old1.UID)))
			g.Expect(rowOf(a, "swap-2")).To(SatisfyAll(HaveField("Phase", mdmv1alpha1.CommandQueued), HaveField("DeviceUID", old2.UID)))
		}).Should(Succeed())

		// swap-1 is deleted; swap-2 is deleted and its serial enrolls again.
		forceDelete(ctx, old1)
		forceDelete(ctx, old2)
		Eventually(gone(ctx, f.ns, "swap-2")).Should(BeTrue())
		dev := f.enroll(ctx, "swap-2")
		f.connect("swap-2")

		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionFailed))
		Expect(rowOf(a, "swap-1")).To(SatisfyAll(HaveField("Phase", mdmv1alpha1.CommandFailed), HaveField("Code", mdmv1alpha1.CodeNotFound),
			HaveField("Message", ContainSubstring(`Device "swap-1" was deleted`))))
		Expect(rowOf(a, "swap-2")).To(SatisfyAll(HaveField("Phase", mdmv1alpha1.CommandFailed), HaveField("Code", mdmv1alpha1.CodeNotFound),
			HaveField("Message", ContainSubstring(`Device "swap-2" was`))))
		Consistently(dev.Executed).WithTimeout(500 * time.Millisecond).Should(BeEmpty())
	})

	It("computes eligibility and sends nothing on a dry run", func() {
		f := newFleet(ctx)
		dev := f.enroll(ctx, "dry-1")
		f.connect("dry-1")
		a := f.action(ctx, "dry", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionWipe, Confirm: "Wipe", DryRun: true,
			Devices: []string{"dry-1", "ghost"}})
		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionPartiallySucceeded))
		Expect(rowOf(a, "dry-1")).To(SatisfyAll(HaveField("Phase", mdmv1alpha1.CommandSucceeded), HaveField("Message", ContainSubstring("dry run"))))
		Consistently(dev.Executed).WithTimeout(500 * time.Millisecond).Should(BeEmpty())
		Expect(device(ctx, f.ns, "dry-1").Status.Phase).To(Equal(mdmv1alpha1.DeviceEnrolled), "a dry-run wipe changes nothing")
	})

	It("expires a command that an offline device never picked up", func() {
		f := newFleet(ctx)
		f.enroll(ctx, "away-1")
		a := f.action(ctx, "expire", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionSync,
			Devices: []string{"away-1"}, Deadline: &metav1.Duration{Duration: 2 * time.Second}})
		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionExpired))
		Expect(rowOf(a, "away-1")).To(SatisfyAll(HaveField("Phase", mdmv1alpha1.CommandExpired), HaveField("Code", mdmv1alpha1.CodeDeadlineExceeded)))
		Expect(a.Status.CompletionTime.Sub(a.Status.StartTime.Time)).To(BeNumerically(">=", 2*time.Second-time.Second))
	})

	It("runs the unenroll flow for an offline device when it comes back, step by step", func() {
		f := newFleet(ctx)
		dev := f.enroll(ctx, "leaver")
		a := f.action(ctx, "unenroll", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionUnenroll, Devices: []string{"leaver"}})
		// Offline: queued, and the device's unenrollment is pending now.
		Eventually(func(g Gomega) {
			d := &mdmv1alpha1.Device{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "leaver"}, d)).To(Succeed())
			g.Expect(d.Status.Unenrollment).NotTo(BeNil())
			g.Expect(d.Status.Unenrollment.Phase).To(Equal(mdmv1alpha1.UnenrollmentPending))
			g.Expect(d.Status.Unenrollment.RequestDate).NotTo(BeNil())
			g.Expect(d.Status.Unenrollment.ExecutionDate).To(BeNil())
		}).Should(Succeed())
		// The row is Pending until the unenrollment is recorded, then Queued.
		Eventually(func(g Gomega) mdmv1alpha1.DeviceCommandPhase {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			return rowOf(a, "leaver").Phase
		}).Should(Equal(mdmv1alpha1.CommandQueued))

		f.connect("leaver")
		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionSucceeded))
		msg := rowOf(a, "leaver").Message
		var at []int
		for _, step := range agent.UnenrollSteps {
			at = append(at, strings.Index(msg, step+": done"))
		}
		Expect(at).To(HaveEach(BeNumerically(">=", 0)), "every step is reported: %s", msg)
		for i := 1; i < len(at); i++ {
			Expect(at[i]).To(BeNumerically(">", at[i-1]), "steps in order: %s", msg)
		}
		Eventually(func(g Gomega) {
			d := &mdmv1alpha1.Device{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "leaver"}, d)).To(Succeed())
			g.Expect(d.Status.Phase).To(Equal(mdmv1alpha1.DeviceUnenrolled))
			g.Expect(d.Status.Unenrollment.Phase).To(Equal(mdmv1alpha1.UnenrollmentSuccess))
			g.Expect(d.Status.Unenrollment.RequestDate).NotTo(BeNil())
			g.Expect(d.Status.Unenrollment.ExecutionDate).NotTo(BeNil())
		}).Should(Succeed())
		Expect(dev.Executed()).To(HaveLen(1))

		// Afterwards the device's certificate is refused.
		c, done, err := f.agents["leaver"].Client()
		Expect(err).NotTo(HaveOccurred())
		defer done()
		Eventually(func(g Gomega) {
			_, err := c.Poll(ctx, connect.NewRequest(&agentv1.PollRequest{}))
			g.Expect(connect.CodeOf(err)).To(Equal(connect.CodePermissionDenied))
		}).Should(Succeed())
	})

	It("records a failed unenroll step", func() {
		f := newFleet(ctx)
		dev := f.enroll(ctx, "stuck")
		dev.FailStep = "UninstallManagedApps"
		f.connect("stuck")
		a := f.action(ctx, "unenroll-fails", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionUnenroll, Devices: []string{"stuck"}})
		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionFailed))
		Expect(rowOf(a, "stuck").Message).To(ContainSubstring("UninstallManagedApps: failed"))
		d := device(ctx, f.ns, "stuck")
		Expect(d.Status.Unenrollment.Phase).To(Equal(mdmv1alpha1.UnenrollmentFailed))
		Expect(d.Status.Unenrollment.ExecutionDate).NotTo(BeNil())
		Expect(d.Status.Phase).To(Equal(mdmv1alpha1.DeviceEnrolled), "a failed unenroll leaves the device managed")
	})

	It("wipes through WipePending to Wiped", func() {
		f := newFleet(ctx)
		f.enroll(ctx, "old-laptop")
		a := f.action(ctx, "wipe", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionWipe, Confirm: "Wipe", Devices: []string{"old-laptop"}})
		Eventually(func() mdmv1alpha1.DevicePhase { return device(ctx, f.ns, "old-laptop").Status.Phase }).Should(Equal(mdmv1alpha1.DeviceWipePending))
		f.connect("old-laptop")
		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionSucceeded))
		Eventually(func() mdmv1alpha1.DevicePhase { return device(ctx, f.ns, "old-laptop").Status.Phase }).Should(Equal(mdmv1alpha1.DeviceWiped))
	})

	It("deletes a finished action after ttlSecondsAfterFinished", func() {
		f := newFleet(ctx)
		f.enroll(ctx, "ttl-1")
		f.connect("ttl-1")
		ttl := int32(3)
		a := f.action(ctx, "short-lived", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionSync, Devices: []string{"ttl-1"}, TTLSecondsAfterFinished: &ttl})
		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionSucceeded))
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a))
		}).Should(BeTrue())
	})
})

var _ = Describe("State-changing actions", func() {
	ctx := context.Background()

	It("sets the Device's spec field by server-side apply and the device follows", func() {
		f := newFleet(ctx)
		f.enroll(ctx, "cb-1")
		f.connect("cb-1")
		a := f.action(ctx, "disable", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionDisable, Devices: []string{"cb-1"}})
		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionSucceeded))
		d := device(ctx, f.ns, "cb-1")
		Expect(d.Spec.State).To(Equal(mdmv1alpha1.DeviceStateDisabled))
		Eventually(func() mdmv1alpha1.DevicePhase { return device(ctx, f.ns, "cb-1").Status.Phase }).Should(Equal(mdmv1alpha1.DeviceDisabled))

		// Only Reenable is allowed now, and it brings the device back.
		lock := f.action(ctx, "lock-disabled", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock, Devices: []string{"cb-1"}})
		Eventually(finished(ctx, lock)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionFailed))
		Expect(rowOf(lock, "cb-1")).To(SatisfyAll(HaveField("Phase", mdmv1alpha1.CommandIneligible), HaveField("Code", mdmv1alpha1.CodeFailedPrecondition)))
		re := f.action(ctx, "reenable", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionReenable, Devices: []string{"cb-1"}})
		Eventually(finished(ctx, re)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionSucceeded))
		Eventually(func() mdmv1alpha1.DevicePhase { return device(ctx, f.ns, "cb-1").Status.Phase }).Should(Equal(mdmv1alpha1.DeviceEnrolled))
		Expect(device(ctx, f.ns, "cb-1").Spec.State).To(Equal(mdmv1alpha1.DeviceStateActive))
	})

	It("aborts where another field manager owns the field and leaves the spec untouched", func() {
		f := newFleet(ctx)
		f.enroll(ctx, "git-owned")
		f.connect("git-owned")
		// Git (Argo CD with server-side apply) takes ownership of spec.state.
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "mdm.kubemdm.io/v1alpha1", "kind": "Device",
			"metadata": map[string]any{"name": "git-owned", "namespace": f.ns},
			"spec":     map[string]any{"platform": "Linux", "state": "Active"},
		}}
		Expect(k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("argocd-controller"), client.ForceOwnership)).To(Succeed())
		before := device(ctx, f.ns, "git-owned")

		a := f.action(ctx, "disable-git", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionDisable, Devices: []string{"git-owned"}})
		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionFailed))
		Expect(rowOf(a, "git-owned")).To(SatisfyAll(
			HaveField("Phase", mdmv1alpha1.CommandFailed),
			HaveField("Code", mdmv1alpha1.CodeAborted),
			HaveField("Message", ContainSubstring(`"argocd-controller"`)),
		))
		after := device(ctx, f.ns, "git-owned")
		Expect(after.Spec).To(Equal(before.Spec))
		Expect(after.Generation).To(Equal(before.Generation))
		Expect(f.devices["git-owned"].Executed()).To(BeEmpty(), "an aborted action sends nothing")
	})
})

var _ = Describe("A Disabled device", func() {
	ctx := context.Background()

	It("is disabled by spec.state from Git, shows it in the phase, and can still be wiped", func() {
		f := newFleet(ctx)
		dev := f.enroll(ctx, "stolen-1")
		f.connect("stolen-1")
		Eventually(func() mdmv1alpha1.DevicePhase { return device(ctx, f.ns, "stolen-1").Status.Phase }).Should(Equal(mdmv1alpha1.DeviceEnrolled))
		Expect(dev.Disabled()).To(BeFalse())

		patchSpec(ctx, f.ns, "stolen-1", func(d *mdmv1alpha1.Device) { d.Spec.State = mdmv1alpha1.DeviceStateDisabled })
		Eventually(dev.Disabled).Should(BeTrue(), "the device enforces what Git asked")
		Eventually(func() mdmv1alpha1.DevicePhase { return device(ctx, f.ns, "stolen-1").Status.Phase }).Should(Equal(mdmv1alpha1.DeviceDisabled))

		lock := f.action(ctx, "lock", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock, Devices: []string{"stolen-1"}})
		Eventually(finished(ctx, lock)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionFailed))
		Expect(rowOf(lock, "stolen-1").Phase).To(Equal(mdmv1alpha1.CommandIneligible))

		wipe := f.action(ctx, "wipe", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionWipe, Confirm: "Wipe", Devices: []string{"stolen-1"}})
		Eventually(finished(ctx, wipe)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionSucceeded))
		Eventually(func() mdmv1alpha1.DevicePhase { return device(ctx, f.ns, "stolen-1").Status.Phase }).Should(Equal(mdmv1alpha1.DeviceWiped))
	})

	It("comes back when Git sets it Active again", func() {
		f := newFleet(ctx)
		dev := f.enroll(ctx, "found-1")
		f.connect("found-1")
		patchSpec(ctx, f.ns, "found-1", func(d *mdmv1alpha1.Device) { d.Spec.State = mdmv1alpha1.DeviceStateDisabled })
		Eventually(func() mdmv1alpha1.DevicePhase { return device(ctx, f.ns, "found-1").Status.Phase }).Should(Equal(mdmv1alpha1.DeviceDisabled))
		patchSpec(ctx, f.ns, "found-1", func(d *mdmv1alpha1.Device) { d.Spec.State = mdmv1alpha1.DeviceStateActive })
		Eventually(dev.Disabled).Should(BeFalse())
		Eventually(func() mdmv1alpha1.DevicePhase { return device(ctx, f.ns, "found-1").Status.Phase }).Should(Equal(mdmv1alpha1.DeviceEnrolled))
	})
})
