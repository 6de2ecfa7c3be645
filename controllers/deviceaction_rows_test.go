package controllers_test

import (
	"context"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

var _ = Describe("A DeviceAction's rows", func() {
	ctx := context.Background()

	It("are stored without per-row field tracking, which would cost more than the rows on every write", func() {
		ns := newNamespace(ctx)
		names := make([]string, 50)
		for i := range names {
			names[i] = fmt.Sprintf("missing-%02d", i)
		}
		a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lock"},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock, Devices: names}}
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		Eventually(rowsOf(ctx, a)).Should(And(HaveLen(len(names)),
			HaveEach(HaveField("Code", mdmv1alpha1.CodeNotFound))))

		var tracked []byte
		for _, f := range a.ManagedFields {
			if f.Subresource == "status" && f.FieldsV1 != nil {
				tracked = append(tracked, f.FieldsV1.Raw...)
			}
		}
		Expect(string(tracked)).NotTo(ContainSubstring(`k:{\"name\"`), "no managedFields entry per row")
		Expect(len(tracked)).To(BeNumerically("<", 1024),
			"the status's field tracking does not grow with its %d rows", len(names))
	})
})
