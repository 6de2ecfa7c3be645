package controllers_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/controllers"
	"github.com/kubemdm/kubemdm/internal/enrollment"
)

var _ = Describe("A Device created by an enrollment", func() {
	ctx := context.Background()

	It("takes the enrollment record the gateway signed, and no other, into its status", func() {
		ns := newNamespace(ctx)
		forger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		Expect(err).NotTo(HaveOccurred())
		now := time.Now()
		key := "sha256:" + strings.Repeat("ab", 32)
		for _, tc := range []struct {
			name   string
			signer *ecdsa.PrivateKey
			at     time.Time
		}{
			{name: "signed", signer: deviceCAKey, at: now},
			{name: "forged", signer: forger, at: now},
			{name: "replayed", signer: deviceCAKey, at: now.Add(-time.Hour)},
		} {
			value, err := enrollment.Record{Token: "fleet", Key: key, At: tc.at}.Sign(tc.signer, ns, tc.name)
			Expect(err).NotTo(HaveOccurred())
			d := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tc.name,
				Annotations: map[string]string{mdmv1alpha1.AnnotationEnrollment: value},
				Finalizers:  []string{mdmv1alpha1.Finalizer}},
				Spec: mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformLinux}}
			Expect(k8sClient.Create(ctx, d)).To(Succeed())
		}

		d := &mdmv1alpha1.Device{}
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "signed"}, d)).To(Succeed())
			g.Expect(d.Status.Phase).To(Equal(mdmv1alpha1.DeviceEnrolled))
			g.Expect(d.Status.EnrollmentToken).To(Equal("fleet"))
			g.Expect(d.Status.EnrollmentKey).To(Equal(key))
			g.Expect(d.Status.EnrolledAt).NotTo(BeNil())
			g.Expect(d.Status.EnrolledAt.Time.Equal(now.Truncate(time.Second))).To(BeTrue(), "enrolledAt %s is the record's %s", d.Status.EnrolledAt, now)
			g.Expect(meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionEnrolled)).To(BeTrue())
			g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
		}).Should(Succeed())

		for _, name := range []string{"forged", "replayed"} {
			Eventually(func(g Gomega) {
				d := &mdmv1alpha1.Device{}
				g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
				g.Expect(d.Status.Phase).To(Equal(mdmv1alpha1.DeviceRegistered), "a %s record enrolls nothing", name)
				g.Expect(d.Status.EnrollmentKey).To(BeEmpty())
				g.Expect(meta.IsStatusConditionFalse(d.Status.Conditions, mdmv1alpha1.DeviceConditionEnrolled)).To(BeTrue())
			}).Should(Succeed())
		}
		Eventually(func(g Gomega) {
			events := &eventsv1.EventList{}
			g.Expect(k8sClient.List(ctx, events, client.InNamespace(ns))).To(Succeed())
			var rejected []string
			for _, e := range events.Items {
				if e.Reason == controllers.DeviceReasonEnrollmentRecordRejected {
					rejected = append(rejected, e.Regarding.Name)
				}
			}
			g.Expect(rejected).To(ContainElements("forged", "replayed"))
			g.Expect(rejected).NotTo(ContainElement("signed"))
		}).Should(Succeed())
	})
})
