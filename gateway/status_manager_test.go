package gateway_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/patch"
)

var _ = Describe("The gateway's status manager", func() {
	ctx := context.Background()

	It("releases the facts an older gateway's report manager owns, so that one the device no longer reports goes away", func() {
		ns := newNamespace(ctx)
		value, pin := issuedToken(ctx, linuxToken(ns, "legacy", true))
		a, _ := newAgent(value, pin, "SN-LEGACY")
		Expect(a.Enroll(ctx)).To(Succeed())
		device := &mdmv1alpha1.Device{}
		key := client.ObjectKey{Namespace: ns, Name: "sn-legacy"}
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key, device)).To(Succeed())
			g.Expect(device.Status.Phase).To(Equal(mdmv1alpha1.DeviceEnrolled))
		}).Should(Succeed())
		// As an older gateway left it: lost mode, reported under the
		// facts' former manager.
		Expect(patch.ApplyDeviceStatus(ctx, k8sClient, key, device.UID, "kubemdm-gateway-report", map[string]any{
			"lostMode": map[string]any{"enabled": true, "message": "Return to the front desk"}})).To(Succeed())

		stop := run(a)
		defer stop()
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key, device)).To(Succeed())
			g.Expect(device.Status.DeviceInfo).NotTo(BeNil(), "the agent reported")
			g.Expect(device.Status.LostMode).To(BeNil(), "the device reports no lost mode")
			for _, m := range device.ManagedFields {
				if m.Manager == "kubemdm-gateway-report" {
					g.Expect(string(m.FieldsV1.Raw)).To(MatchJSON(`{"f:status":{}}`), "the former manager owns no status field")
				}
			}
		}).Should(Succeed())
	})
})
