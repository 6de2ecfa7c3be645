package fault

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// The manager's metrics endpoint as Prometheus reaches it: HTTPS, a
// service account's token that the apiserver authenticates, and the
// metrics-reader ClusterRole of config/rbac authorizing it.
var _ = Describe("The manager's secure metrics endpoint", func() {
	It("serves a token bound to metrics-reader, and refuses no token and a token without the role", func(ctx SpecContext) {
		metricsAddr := freeAddr()
		startManager("metrics", freeAddr(), "mdm.test:443", true, "--metrics-bind-address", metricsAddr)

		nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "fault-metrics-"}}
		Expect(k8sClient.Create(ctx, nsObj)).To(Succeed())
		ns := nsObj.Name
		raw, err := os.ReadFile(filepath.Join(repoRoot(), "config", "rbac", "metrics_reader_role.yaml"))
		Expect(err).NotTo(HaveOccurred())
		role := &rbacv1.ClusterRole{}
		Expect(yaml.UnmarshalStrict(raw, role)).To(Succeed())
		role.Name = ns + "-metrics-reader"
		Expect(k8sClient.Create(ctx, role)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { _ = k8sClient.Delete(ctx, role) })
		token := func(name string) string {
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
			Expect(k8sClient.Create(ctx, sa)).To(Succeed())
			req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}
			Expect(k8sClient.SubResource("token").Create(ctx, sa, req)).To(Succeed())
			return req.Status.Token
		}
		prometheus, stranger := token("prometheus"), token("stranger")
		binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: ns + "-prometheus"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "prometheus"}}}
		Expect(k8sClient.Create(ctx, binding)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { _ = k8sClient.Delete(ctx, binding) })

		// The manager's certificate is self-signed unless cert-manager
		// issues one, as the ServiceMonitor says.
		httpClient := &http.Client{Timeout: 5 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed on purpose
		scrape := func(g Gomega, bearer string) (int, string) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+metricsAddr+"/metrics", nil)
			g.Expect(err).NotTo(HaveOccurred())
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			res, err := httpClient.Do(req)
			g.Expect(err).NotTo(HaveOccurred())
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			g.Expect(err).NotTo(HaveOccurred())
			return res.StatusCode, string(body)
		}
		Eventually(func(g Gomega) {
			code, body := scrape(g, prometheus)
			g.Expect(code).To(Equal(http.StatusOK), body)
			g.Expect(body).To(ContainSubstring("# TYPE kubemdm_configuration_rollouts_paused gauge"))
			g.Expect(body).To(ContainSubstring("kubemdm_gateway_streams"))
		}).WithTimeout(30*time.Second).Should(Succeed(), "Prometheus's token, bound to metrics-reader")
		Eventually(func(g Gomega) {
			code, _ := scrape(g, "")
			g.Expect(code).To(Equal(http.StatusUnauthorized))
			code, _ = scrape(g, stranger)
			g.Expect(code).To(Equal(http.StatusForbidden))
			// controller-runtime's filter answers a token the apiserver
			// rejects with an error as a failed authentication (500).
			code, body := scrape(g, "not-a-token")
			g.Expect(code).NotTo(Equal(http.StatusOK))
			g.Expect(body).NotTo(ContainSubstring("kubemdm_"))
		}).Should(Succeed())
		// Plain HTTP gets TLS's refusal, not the metrics.
		res, err := http.Get("http://" + metricsAddr + "/metrics")
		Expect(err).NotTo(HaveOccurred())
		defer res.Body.Close()
		Expect(res.StatusCode).To(Equal(http.StatusBadRequest))
	})
})
