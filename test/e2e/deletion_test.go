package e2e

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/controllers"
)

func gone(ctx context.Context, ns, name string) func() bool {
	return func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &mdmv1alpha1.Device{}))
	}
}

// forceDelete deletes a Device and lets it go at once, whatever its policy.
func forceDelete(ctx context.Context, d *mdmv1alpha1.Device) {
	Expect(k8sClient.Patch(ctx, d, client.RawPatch(types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"`+controllers.AnnotationForceDelete+`":"true"}}}`)))).To(Succeed())
	Expect(k8sClient.Delete(ctx, d)).To(Succeed())
}

func setPolicy(ctx context.Context, ns, name string, p mdmv1alpha1.DeletionPolicy) {
	d := device(ctx, ns, name)
	before := d.DeepCopy()
	d.Spec.DeletionPolicy = p
	Expect(k8sClient.Patch(ctx, d, client.MergeFrom(before))).To(Succeed())
}

var _ = Describe("Deleting a Device", func() {
	ctx := context.Background()

	It("retires the device by default, then lets go", func() {
		f := newFleet(ctx)
		dev := f.enroll(ctx, "git-removed")
		f.connect("git-removed")
		Eventually(func() []string { return device(ctx, f.ns, "git-removed").Finalizers }).Should(ContainElement(mdmv1alpha1.Finalizer))
		Expect(k8sClient.Delete(ctx, device(ctx, f.ns, "git-removed"))).To(Succeed())
		Eventually(gone(ctx, f.ns, "git-removed")).Should(BeTrue())
		Expect(dev.Executed()).To(HaveLen(1))
		Expect(dev.Executed()[0].GetAction()).To(Equal("Retire"))
	})

	It("unenrolls the device under deletionPolicy Unenroll", func() {
		f := newFleet(ctx)
		dev := f.enroll(ctx, "leaving")
		f.connect("leaving")
		setPolicy(ctx, f.ns, "leaving", mdmv1alpha1.DeletionPolicyUnenroll)
		Eventually(func() []string { return device(ctx, f.ns, "leaving").Finalizers }).Should(ContainElement(mdmv1alpha1.Finalizer))
		Expect(k8sClient.Delete(ctx, device(ctx, f.ns, "leaving"))).To(Succeed())
		Eventually(gone(ctx, f.ns, "leaving")).Should(BeTrue())
		Expect(dev.Executed()).To(HaveLen(1))
		Expect(dev.Executed()[0].GetAction()).To(Equal("Unenroll"))
	})

	It("touches nothing under deletionPolicy Orphan", func() {
		f := newFleet(ctx)
		dev := f.enroll(ctx, "orphan")
		f.connect("orphan")
		setPolicy(ctx, f.ns, "orphan", mdmv1alpha1.DeletionPolicyOrphan)
		Eventually(func() []string { return device(ctx, f.ns, "orphan").Finalizers }).Should(ContainElement(mdmv1alpha1.Finalizer))
		Expect(k8sClient.Delete(ctx, device(ctx, f.ns, "orphan"))).To(Succeed())
		Eventually(gone(ctx, f.ns, "orphan")).Should(BeTrue())
		Consistently(dev.Executed).WithTimeout(300 * time.Millisecond).Should(BeEmpty())
	})

	It("releases a device that never enrolled at once", func() {
		f := newFleet(ctx)
		d := &mdmv1alpha1.Device{}
		d.Namespace, d.Name, d.Spec.Platform = f.ns, "paper-only", mdmv1alpha1.PlatformLinux
		Expect(k8sClient.Create(ctx, d)).To(Succeed())
		Eventually(func() []string { return device(ctx, f.ns, "paper-only").Finalizers }).Should(ContainElement(mdmv1alpha1.Finalizer))
		Expect(k8sClient.Delete(ctx, d)).To(Succeed())
		Eventually(gone(ctx, f.ns, "paper-only")).Should(BeTrue())
	})

	It("lets go of an offline device with the force annotation", func() {
		f := newFleet(ctx)
		f.enroll(ctx, "lost-forever")
		Eventually(func() []string { return device(ctx, f.ns, "lost-forever").Finalizers }).Should(ContainElement(mdmv1alpha1.Finalizer))
		Expect(k8sClient.Delete(ctx, device(ctx, f.ns, "lost-forever"))).To(Succeed())
		Consistently(gone(ctx, f.ns, "lost-forever")).WithTimeout(time.Second).Should(BeFalse(), "it waits for the device")
		d := device(ctx, f.ns, "lost-forever")
		before := d.DeepCopy()
		d.Annotations = map[string]string{controllers.AnnotationForceDelete: "true"}
		Expect(k8sClient.Patch(ctx, d, client.MergeFrom(before))).To(Succeed())
		Eventually(gone(ctx, f.ns, "lost-forever")).Should(BeTrue())
	})
})
