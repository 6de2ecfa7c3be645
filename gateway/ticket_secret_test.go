package gateway_test

import (
	"context"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemdm/kubemdm/gateway"
)

var _ = Describe("The session ticket Secret", func() {
	ctx := context.Background()

	It("is created once by replicas starting together, and read thereafter", func() {
		key := types.NamespacedName{Namespace: newNamespace(ctx), Name: "kubemdm-gateway-session-tickets"}
		const replicas = 8
		secrets := make([][]byte, replicas)
		var wg sync.WaitGroup
		for i := range replicas {
			wg.Go(func() {
				defer GinkgoRecover()
				secret, err := gateway.EnsureTicketSecret(ctx, k8sClient, k8sClient, key)
				Expect(err).NotTo(HaveOccurred())
				secrets[i] = secret
			})
		}
		wg.Wait()
		stored := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, key, stored)).To(Succeed())
		Expect(stored.Data[gateway.TicketSecretKey]).To(HaveLen(32))
		for i, secret := range secrets {
			Expect(secret).To(Equal(stored.Data[gateway.TicketSecretKey]), "replica %d derives its tickets from another secret", i)
		}
		again, err := gateway.EnsureTicketSecret(ctx, k8sClient, k8sClient, key)
		Expect(err).NotTo(HaveOccurred())
		Expect(again).To(Equal(stored.Data[gateway.TicketSecretKey]), "a restart reads the same secret")
	})

	It("refuses a secret too short to derive keys from, naming the Secret and its key", func() {
		ns := newNamespace(ctx)
		short := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tickets"}, Data: map[string][]byte{gateway.TicketSecretKey: []byte("hunter2")}}
		Expect(k8sClient.Create(ctx, short)).To(Succeed())
		_, err := gateway.EnsureTicketSecret(ctx, k8sClient, k8sClient, types.NamespacedName{Namespace: ns, Name: "tickets"})
		Expect(err).To(MatchError(ContainSubstring(`session ticket Secret ` + ns + `/tickets: data["secret"] has 7 bytes, fewer than 32`)))
	})
})
