package gateway_test

import (
	"context"
	"fmt"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

	It("reads the secret of a replica that created the Secret after this one looked", func() {
		key := types.NamespacedName{Namespace: newNamespace(ctx), Name: "tickets"}
		theirs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
			Data: map[string][]byte{gateway.TicketSecretKey: []byte("0123456789abcdef0123456789abcdef")}}
		Expect(k8sClient.Create(ctx, theirs)).To(Succeed())
		secret, err := gateway.EnsureTicketSecret(ctx, &lateReader{Reader: k8sClient}, k8sClient, key)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(secret)).To(Equal("0123456789abcdef0123456789abcdef"))
	})

	It("refuses a Secret without a secret long enough to derive keys from, naming the Secret and its key", func() {
		ns := newNamespace(ctx)
		for name, data := range map[string]map[string][]byte{
			"short":   {gateway.TicketSecretKey: []byte("hunter2")},
			"missing": {"tls.key": []byte("0123456789abcdef0123456789abcdef")},
		} {
			Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data})).To(Succeed())
			_, err := gateway.EnsureTicketSecret(ctx, k8sClient, k8sClient, types.NamespacedName{Namespace: ns, Name: name})
			Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf(`session ticket Secret %s/%s: data["secret"] has %d bytes, fewer than 32; delete the Secret`,
				ns, name, len(data[gateway.TicketSecretKey])))), name)
		}
	})
})

// lateReader answers its first Get as the apiserver did before another
// replica created the object: not found.
type lateReader struct {
	client.Reader
	asked bool
}

func (r *lateReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if !r.asked {
		r.asked = true
		return apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}
