package controllers_test

import (
	"context"
	"fmt"
	"slices"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

var _ = Describe("DeviceActions taken up by several workers", func() {
	ctx := context.Background()
	It("queue the actions on one device in the order they were created", func() {
		ns := newNamespace(ctx)
		enrolledDevices(ctx, ns, "shared")
		// Names sort against creation, and a dozen actions created within
		// a second share their creation timestamp: only the order they
		// arrived in gives the queue order.
		var created []*mdmv1alpha1.DeviceAction
		for i := range 12 {
			action := []mdmv1alpha1.ActionType{mdmv1alpha1.ActionLock, mdmv1alpha1.ActionUnlock}[i%2]
			a := &mdmv1alpha1.DeviceAction{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("z%02d", 12-i)},
				Spec:       mdmv1alpha1.DeviceActionSpec{Action: action, Devices: []string{"shared"}},
			}
			Expect(k8sClient.Create(ctx, a)).To(Succeed())
			created = append(created, a)
		}
		Eventually(func(g Gomega) {
			for _, a := range created {
				g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
				g.Expect(a.Status.QueuedAt).NotTo(BeNil(), a.Name)
			}
		}).Should(Succeed())
		queued := slices.Clone(created)
		slices.SortFunc(queued, mdmv1alpha1.CompareQueueOrder)
		names := func(as []*mdmv1alpha1.DeviceAction) (out []string) {
			for _, a := range as {
				out = append(out, a.Name)
			}
			return out
		}
		Expect(names(queued)).To(Equal(names(created)))
	})
})
