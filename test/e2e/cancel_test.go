package e2e

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func cancelAction(ctx context.Context, a *mdmv1alpha1.DeviceAction) {
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
	before := a.DeepCopy()
	a.Spec.Cancel = true
	Expect(k8sClient.Patch(ctx, a, client.MergeFrom(before))).To(Succeed())
}

func executedActions(f *fleet, name string) []string {
	var out []string
	for _, c := range f.devices[name].Executed() {
		out = append(out, c.GetAction())
	}
	return out
}

// busyDevice connects a device that takes 2s per command and sends it a
// Sync, then a Lock: it works on the Sync while it holds the Lock, delivered
// and not started.
func busyDevice(ctx context.Context, name string) (f *fleet, first, lock *mdmv1alpha1.DeviceAction) {
	f = newFleet(ctx)
	f.enroll(ctx, name).Delay = 2 * time.Second
	f.connect(name)
	first = f.action(ctx, "sync", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionSync, Devices: []string{name}})
	lock = f.action(ctx, "lock", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock, Devices: []string{name}})
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(lock), lock)).To(Succeed())
		g.Expect(rowOf(lock, name).Phase).To(Equal(mdmv1alpha1.CommandDelivered))
	}).Should(Succeed())
	return f, first, lock
}

var _ = Describe("Canceling", func() {
	ctx := context.Background()

	It("withdraws a command an online device holds but has not started, and the device never runs it", func() {
		f, first, lock := busyDevice(ctx, "busy-1")
		cancelAction(ctx, lock)

		Eventually(finished(ctx, lock)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionCanceled))
		Expect(rowOf(lock, "busy-1")).To(SatisfyAll(
			HaveField("Phase", mdmv1alpha1.CommandCanceled),
			HaveField("Code", mdmv1alpha1.CodeCanceled),
			HaveField("Message", "Canceled before it started")))
		Eventually(finished(ctx, first)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionSucceeded))
		Consistently(func() []string { return executedActions(f, "busy-1") }, "3s").Should(Equal([]string{"Sync"}))
		Expect(kstatus(lock)).To(Equal("Failed"), "a canceled action did not do its work: kstatus Failed, Argo CD Degraded")
	})

	It("leaves alone a command the device already ran", func() {
		f := newFleet(ctx)
		f.enroll(ctx, "quick-1")
		f.connect("quick-1")
		a := f.action(ctx, "lock", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock, Devices: []string{"quick-1"}})
		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionSucceeded))
		cancelAction(ctx, a)
		Consistently(func(g Gomega) mdmv1alpha1.ActionPhase {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			return a.Status.Phase
		}, "1s").Should(Equal(mdmv1alpha1.ActionSucceeded))
	})

	It("cancels the wipe queued for an offline device, which never runs it when it comes back", func() {
		f := newFleet(ctx)
		f.enroll(ctx, "away-1")
		wipe := f.action(ctx, "wipe", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionWipe, Confirm: "Wipe", Devices: []string{"away-1"}})
		Eventually(func() mdmv1alpha1.DevicePhase { return device(ctx, f.ns, "away-1").Status.Phase }).Should(Equal(mdmv1alpha1.DeviceWipePending))
		cancelAction(ctx, wipe)
		Eventually(finished(ctx, wipe)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionCanceled))
		Expect(rowOf(wipe, "away-1").Phase).To(Equal(mdmv1alpha1.CommandCanceled))
		Eventually(func() mdmv1alpha1.DevicePhase { return device(ctx, f.ns, "away-1").Status.Phase }).Should(Equal(mdmv1alpha1.DeviceEnrolled))

		f.connect("away-1")
		sync := f.action(ctx, "sync", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionSync, Devices: []string{"away-1"}})
		Eventually(finished(ctx, sync)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionSucceeded))
		Expect(executedActions(f, "away-1")).To(Equal([]string{"Sync"}))
	})

	It("cancels through the finalizer when a running action is deleted", func() {
		f, first, lock := busyDevice(ctx, "busy-2")
		Expect(k8sClient.Delete(ctx, lock)).To(Succeed())
		Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(lock), lock)) }).Should(BeTrue())
		Eventually(finished(ctx, first)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionSucceeded))
		Consistently(func() []string { return executedActions(f, "busy-2") }, "3s").Should(Equal([]string{"Sync"}))
	})
})
