package controllers_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// enrolledDevices creates Linux Devices that enrolled and are offline: their
// commands stay Queued, so nothing but the controller moves the rows.
func enrolledDevices(ctx context.Context, ns string, names ...string) {
	for _, name := range names {
		d := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformLinux}}
		Expect(k8sClient.Create(ctx, d)).To(Succeed())
		// The controller settles a new Device as Registered; marking it
		// Enrolled before that would race its status write.
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
			g.Expect(d.Status.Phase).To(Equal(mdmv1alpha1.DeviceRegistered))
			before := d.DeepCopy()
			d.Status.Phase = mdmv1alpha1.DeviceEnrolled
			g.Expect(k8sClient.Status().Patch(ctx, d, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))).To(Succeed())
		}).Should(Succeed())
		// The Device controller marks it Enrolled once the manager's cache
		// shows the phase; the DeviceAction controller reads that cache,
		// so an action created before could still find it Registered.
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionEnrolled)).To(BeTrue())
		}).Should(Succeed())
	}
}

func getDevice(ctx context.Context, ns, name string) *mdmv1alpha1.Device {
	d := &mdmv1alpha1.Device{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
	return d
}

func rowsOf(ctx context.Context, a *mdmv1alpha1.DeviceAction) func(g Gomega) []mdmv1alpha1.DeviceResult {
	return func(g Gomega) []mdmv1alpha1.DeviceResult {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		return a.Status.Devices
	}
}

func setCancel(ctx context.Context, a *mdmv1alpha1.DeviceAction) {
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
	before := a.DeepCopy()
	a.Spec.Cancel = true
	Expect(k8sClient.Patch(ctx, a, client.MergeFrom(before))).To(Succeed())
}

var _ = Describe("Canceling a DeviceAction", func() {
	ctx := context.Background()

	It("cancels the queued rows, undoes the pending wipe and keeps the record", func() {
		ns := newNamespace(ctx)
		enrolledDevices(ctx, ns, "w1", "w2")
		a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wipe"},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionWipe, Confirm: "Wipe", Devices: []string{"w1", "w2"}}}
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		Eventually(rowsOf(ctx, a)).Should(HaveEach(HaveField("Phase", mdmv1alpha1.CommandQueued)))
		Expect(a.Finalizers).To(ContainElement(mdmv1alpha1.Finalizer))
		Expect(getDevice(ctx, ns, "w1").Status.Phase).To(Equal(mdmv1alpha1.DeviceWipePending))

		setCancel(ctx, a)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(mdmv1alpha1.ActionCanceled))
		}).Should(Succeed())
		Expect(a.Status.Devices).To(HaveEach(And(
			HaveField("Phase", mdmv1alpha1.CommandCanceled),
			HaveField("Code", mdmv1alpha1.CodeCanceled),
			HaveField("Message", "Canceled before it was delivered"))))
		Expect(a.Status.Summary).To(Equal(&mdmv1alpha1.ActionSummary{Total: 2, Canceled: 2}))
		stalled := meta.FindStatusCondition(a.Status.Conditions, mdmv1alpha1.ConditionStalled)
		Expect(stalled).NotTo(BeNil())
		Expect(stalled.Reason).To(Equal("Canceled"))
		Eventually(func(g Gomega) []string {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			return a.Finalizers
		}).ShouldNot(ContainElement(mdmv1alpha1.Finalizer), "a finished action has nothing left to undo")
		Eventually(func() mdmv1alpha1.DevicePhase { return getDevice(ctx, ns, "w1").Status.Phase }).Should(Equal(mdmv1alpha1.DeviceEnrolled))
		Eventually(func() mdmv1alpha1.DevicePhase { return getDevice(ctx, ns, "w2").Status.Phase }).Should(Equal(mdmv1alpha1.DeviceEnrolled))
	})

	It("undoes the state change of a canceled Disable", func() {
		ns := newNamespace(ctx)
		enrolledDevices(ctx, ns, "lost-1")
		a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "disable"},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionDisable, Devices: []string{"lost-1"}}}
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		Eventually(func() mdmv1alpha1.DeviceState { return getDevice(ctx, ns, "lost-1").Spec.State }).Should(Equal(mdmv1alpha1.DeviceStateDisabled))
		setCancel(ctx, a)
		Eventually(func() mdmv1alpha1.DeviceState { return getDevice(ctx, ns, "lost-1").Spec.State }).Should(Equal(mdmv1alpha1.DeviceStateActive))
		Eventually(rowsOf(ctx, a)).Should(ConsistOf(HaveField("Phase", mdmv1alpha1.CommandCanceled)))
	})

	It("leaves the state alone when Git took it over before the Disable was canceled", func() {
		ns := newNamespace(ctx)
		enrolledDevices(ctx, ns, "git-1")
		a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "disable"},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionDisable, Devices: []string{"git-1"}}}
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		Eventually(func() mdmv1alpha1.DeviceState { return getDevice(ctx, ns, "git-1").Spec.State }).Should(Equal(mdmv1alpha1.DeviceStateDisabled))
		// Git (Argo CD with server-side apply) now says Disabled too, and
		// shares the field; the cache shows no owners, the apiserver does.
		git := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "mdm.kubemdm.io/v1alpha1", "kind": "Device",
			"metadata": map[string]any{"name": "git-1", "namespace": ns},
			"spec":     map[string]any{"platform": "Linux", "state": "Disabled"},
		}}
		Expect(k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(git), client.FieldOwner("argocd-controller"), client.ForceOwnership)).To(Succeed())
		setCancel(ctx, a)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(mdmv1alpha1.ActionCanceled))
		}).Should(Succeed(), "the undo does not fight Git's ownership")
		Expect(getDevice(ctx, ns, "git-1").Spec.State).To(Equal(mdmv1alpha1.DeviceStateDisabled))
	})

	It("runs the same cancel when a running action is deleted, before it goes", func() {
		ns := newNamespace(ctx)
		enrolledDevices(ctx, ns, "u1", "u2")
		a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unenroll"},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionUnenroll, Devices: []string{"u1", "u2"}}}
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		Eventually(rowsOf(ctx, a)).Should(HaveEach(HaveField("Phase", mdmv1alpha1.CommandQueued)))
		Expect(getDevice(ctx, ns, "u1").Status.Unenrollment.Phase).To(Equal(mdmv1alpha1.UnenrollmentPending))

		// u2's agent took the command (as the gateway records it) and never
		// answers: the deleted action waits CancelGrace for it, then goes.
		before := a.DeepCopy()
		now := metav1.Now()
		a.Status.Devices[1].Phase, a.Status.Devices[1].DeliveredAt = mdmv1alpha1.CommandDelivered, &now
		Expect(k8sClient.Status().Patch(ctx, a, client.MergeFrom(before))).To(Succeed())
		deleted := time.Now()
		Expect(k8sClient.Delete(ctx, a)).To(Succeed())

		Eventually(func() *mdmv1alpha1.UnenrollmentStatus { return getDevice(ctx, ns, "u1").Status.Unenrollment }).
			Should(HaveField("Phase", mdmv1alpha1.UnenrollmentNone))
		Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)) }).Should(BeTrue())
		// The grace of 2s runs from deletionTimestamp, which counts whole
		// seconds: at least 1s passed.
		Expect(time.Since(deleted)).To(BeNumerically(">=", time.Second), "the action waits for the device that holds the command")
		// u2 may have run it: nothing is undone on a guess, and its
		// unenrollment did not succeed as far as anyone knows.
		u := getDevice(ctx, ns, "u2").Status.Unenrollment
		Expect(u.Phase).To(Equal(mdmv1alpha1.UnenrollmentFailed))
		Expect(u.RequestDate).NotTo(BeNil())
	})

	It("leaves a change alone while another action still wants it", func() {
		ns := newNamespace(ctx)
		enrolledDevices(ctx, ns, "twice")
		first := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "disable-1"},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionDisable, Devices: []string{"twice"}}}
		second := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "disable-2"},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionDisable, Devices: []string{"twice"}}}
		Expect(k8sClient.Create(ctx, first)).To(Succeed())
		Eventually(rowsOf(ctx, first)).Should(ConsistOf(HaveField("Phase", mdmv1alpha1.CommandQueued)))
		Expect(k8sClient.Create(ctx, second)).To(Succeed())
		Eventually(rowsOf(ctx, second)).Should(ConsistOf(HaveField("Phase", mdmv1alpha1.CommandQueued)))

		setCancel(ctx, first)
		Eventually(func(g Gomega) mdmv1alpha1.ActionPhase {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(first), first)).To(Succeed())
			return first.Status.Phase
		}).Should(Equal(mdmv1alpha1.ActionCanceled))
		Expect(first.Status.Devices[0].Settled).To(BeTrue())
		Expect(getDevice(ctx, ns, "twice").Spec.State).To(Equal(mdmv1alpha1.DeviceStateDisabled), "disable-2 still wants it")
	})

	It("hands a withdrawn change to the newer action that changes the same field", func() {
		ns := newNamespace(ctx)
		d := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kiosk"},
			Spec: mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformAndroid}}
		Expect(k8sClient.Create(ctx, d)).To(Succeed())
		before := d.DeepCopy()
		d.Status.Phase = mdmv1alpha1.DeviceEnrolled
		Expect(k8sClient.Status().Patch(ctx, d, client.MergeFrom(before))).To(Succeed())

		enter := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "enter"},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionEnterKiosk, Devices: []string{"kiosk"},
				Parameters: &mdmv1alpha1.ActionParameters{KioskApp: "com.example.pos"}}}
		Expect(k8sClient.Create(ctx, enter)).To(Succeed())
		Eventually(rowsOf(ctx, enter)).Should(ConsistOf(HaveField("Phase", mdmv1alpha1.CommandQueued)))
		exit := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "exit"},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionExitKiosk, Devices: []string{"kiosk"}}}
		Expect(k8sClient.Create(ctx, exit)).To(Succeed())
		Eventually(rowsOf(ctx, exit)).Should(ConsistOf(HaveField("Phase", mdmv1alpha1.CommandQueued)))
		Expect(getDevice(ctx, ns, "kiosk").Spec.Kiosk).To(Equal(&mdmv1alpha1.KioskSpec{Enabled: false}))

		// The exit is canceled: the device is to end as the enter says,
		// not as it was before either.
		setCancel(ctx, exit)
		Eventually(func() *mdmv1alpha1.KioskSpec { return getDevice(ctx, ns, "kiosk").Spec.Kiosk }).
			Should(Equal(&mdmv1alpha1.KioskSpec{Enabled: true, App: "com.example.pos"}))
	})

	It("undoes nothing for a command the device received and never answered", func() {
		ns := newNamespace(ctx)
		enrolledDevices(ctx, ns, "silent")
		deadline := metav1.Duration{Duration: 3 * time.Second}
		a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wipe"},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionWipe, Confirm: "Wipe", Devices: []string{"silent"}, Deadline: &deadline}}
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		Eventually(rowsOf(ctx, a)).Should(ConsistOf(HaveField("Phase", mdmv1alpha1.CommandQueued)))
		before := a.DeepCopy()
		now := metav1.Now()
		a.Status.Devices[0].Phase, a.Status.Devices[0].DeliveredAt = mdmv1alpha1.CommandDelivered, &now
		Expect(k8sClient.Status().Patch(ctx, a, client.MergeFrom(before))).To(Succeed())

		Eventually(func(g Gomega) mdmv1alpha1.ActionPhase {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			return a.Status.Phase
		}).Should(Equal(mdmv1alpha1.ActionExpired))
		Consistently(func() mdmv1alpha1.DevicePhase { return getDevice(ctx, ns, "silent").Status.Phase }, "1s").
			Should(Equal(mdmv1alpha1.DeviceWipePending), "the device may be wiping: it is not called Enrolled on a guess")
	})

	It("ends an action canceled before it started without asking any device", func() {
		ns := newNamespace(ctx)
		enrolledDevices(ctx, ns, "n1")
		a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "never"},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionWipe, Confirm: "Wipe", Devices: []string{"n1"}, Cancel: true}}
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(mdmv1alpha1.ActionCanceled))
		}).Should(Succeed())
		Expect(a.Status.Devices).To(BeEmpty())
		Expect(getDevice(ctx, ns, "n1").Status.Phase).To(Equal(mdmv1alpha1.DeviceEnrolled))
	})
})

var _ = Describe("Starting a DeviceAction", func() {
	ctx := context.Background()

	It("records the rows before it changes any device, so a failed write is retried without asking eligibility again", func() {
		ns := newNamespace(ctx)
		names := []string{"f1", "f2", "f3"}
		enrolledDevices(ctx, ns, names...)
		// The second device's WipePending write fails, once; the first
		// one's has landed by then.
		failDeviceStatusWrites("f2", 1)
		a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wipe"},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionWipe, Confirm: "Wipe", Devices: names}}
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		Eventually(rowsOf(ctx, a)).Should(HaveEach(HaveField("Phase", mdmv1alpha1.CommandQueued)),
			"no device may end Ineligible because of the WipePending its own action set")
		for _, name := range names {
			Expect(getDevice(ctx, ns, name).Status.Phase).To(Equal(mdmv1alpha1.DeviceWipePending), fmt.Sprint(name))
		}
		Expect(deviceStatusFaultsLeft("f2")).To(BeZero(), "the fault was hit")
	})
})
