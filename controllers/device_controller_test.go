package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/controllers"
	"github.com/kubemdm/kubemdm/internal/argohealth"
)

var _ = Describe("Device", func() {
	ctx := context.Background()

	It("is Registered, waits in Enrolled=False, and is kstatus Current until an agent enrolls", func() {
		ns := newNamespace(ctx)
		d := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pre"},
			Spec: mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformIOS}}
		Expect(k8sClient.Create(ctx, d)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
			g.Expect(d.Status.Phase).To(Equal(mdmv1alpha1.DeviceRegistered))
			g.Expect(d.Finalizers).To(ContainElement(mdmv1alpha1.Finalizer))
			ready := meta.FindStatusCondition(d.Status.Conditions, mdmv1alpha1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(controllers.DeviceReasonAwaitingEnrollment))
			g.Expect(meta.IsStatusConditionFalse(d.Status.Conditions, mdmv1alpha1.DeviceConditionEnrolled)).To(BeTrue())
			g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
			g.Expect(kstatusOf(d)).To(Equal(status.CurrentStatus))
		}).Should(Succeed())
	})

	It("releases a deleted device that never confirms once the deletion timeout passes", func() {
		ns := newNamespace(ctx)
		d := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "silent"},
			Spec: mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformLinux}}
		Expect(k8sClient.Create(ctx, d)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
			g.Expect(d.Finalizers).To(ContainElement(mdmv1alpha1.Finalizer))
		}).Should(Succeed())
		// Enrolled, but its agent never comes back.
		before := d.DeepCopy()
		d.Status.Phase = mdmv1alpha1.DeviceEnrolled
		d.Status.AppliedConfigGeneration = d.Generation
		Expect(k8sClient.Status().Patch(ctx, d, client.MergeFrom(before))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.ConditionReady)).To(BeTrue())
		}).Should(Succeed())

		deleted := time.Now()
		Expect(k8sClient.Delete(ctx, d)).To(Succeed())
		Eventually(func(g Gomega) {
			list := &mdmv1alpha1.DeviceActionList{}
			g.Expect(k8sClient.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{controllers.LabelDeletionOf: "silent"})).To(Succeed())
			g.Expect(list.Items).To(HaveLen(1))
			g.Expect(list.Items[0].Spec.Action).To(Equal(mdmv1alpha1.ActionRetire))
		}).Should(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(d), d))
		}).Should(BeTrue())
		Expect(time.Since(deleted)).To(BeNumerically(">=", 2*time.Second), "it waited for the device first")
		Eventually(func(g Gomega) {
			events := &eventsv1.EventList{}
			g.Expect(k8sClient.List(ctx, events, client.InNamespace(ns))).To(Succeed())
			g.Expect(events.Items).To(ContainElement(HaveField("Reason", "DeletionTimedOut")))
		}).Should(Succeed())
	})
})

// kstatusOf is the object's kstatus, as kubectl wait-style tools and Flux
// compute it.
func kstatusOf(obj client.Object) status.Status {
	m, err := argohealth.ToMap(obj)
	Expect(err).NotTo(HaveOccurred())
	s, err := argohealth.Kstatus(m)
	Expect(err).NotTo(HaveOccurred())
	return s
}
