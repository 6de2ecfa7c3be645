package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

var _ = Describe("the installer", func() {
	ctx := context.Background()

	It("takes the gateway's address from one setting and is accepted by the apiserver in a server-side dry run", func() {
		root := filepath.Join("..", "..")
		make := exec.Command("make", "--no-print-directory", "kustomize")
		make.Dir = root
		out, err := make.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "%s", out)
		kustomize, _ := filepath.Glob(filepath.Join(root, "bin", "kustomize-*"))
		Expect(kustomize).NotTo(BeEmpty())
		abs, err := filepath.Abs(kustomize[0])
		Expect(err).NotTo(HaveOccurred())
		render := exec.Command("bash", "hack/kustomize-default.sh", abs)
		render.Dir = root
		render.Env = append(os.Environ(), "GATEWAY_HOST=mdm.test.example", "GATEWAY_PORT=8443")
		manifests, err := render.Output()
		Expect(err).NotTo(HaveOccurred())

		// The address reaches the manager's flags through the ConfigMap.
		var host, port, deployment string
		var kept []string
		for _, doc := range strings.Split(string(manifests), "\n---\n") {
			var obj struct {
				Kind string            `json:"kind"`
				Data map[string]string `json:"data"`
			}
			Expect(yaml.Unmarshal([]byte(doc), &obj)).To(Succeed())
			switch obj.Kind {
			case "ConfigMap":
				host, port = obj.Data["host"], obj.Data["port"]
			case "Deployment":
				deployment = doc
			case "Issuer", "Certificate":
				// cert-manager's kinds: not installed here.
				continue
			}
			kept = append(kept, doc)
		}
		Expect(host).To(Equal("mdm.test.example"))
		Expect(port).To(Equal("8443"))
		Expect(deployment).To(ContainSubstring("--enrollment-host=$(GATEWAY_HOST):$(GATEWAY_PORT)"))
		Expect(deployment).To(ContainSubstring("--gateway-tls-hosts=$(GATEWAY_HOST)"))

		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubemdm-system"}}
		if err := k8sClient.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
		k := newKubectl("default")
		apply := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), "--kubeconfig", k.kubeconfig,
			"apply", "--server-side", "--dry-run=server", "--force-conflicts", "--field-manager=installer-test", "-f", "-")
		apply.Stdin = strings.NewReader(strings.Join(kept, "\n---\n"))
		out, err = apply.CombinedOutput()
		GinkgoWriter.Printf("%s\n", out)
		Expect(err).NotTo(HaveOccurred(), "%s", out)
		Expect(string(out)).To(ContainSubstring("deployment.apps/kubemdm-controller-manager serverside-applied (server dry run)"))
		Expect(string(out)).To(ContainSubstring("customresourcedefinition.apiextensions.k8s.io/configurations.mdm.kubemdm.io serverside-applied (server dry run)"))
	})
})

var _ = Describe("the Helm chart", func() {
	ctx := context.Background()

	It("lints, renders with its values, and is accepted by the apiserver in a server-side dry run", func() {
		root := filepath.Join("..", "..")
		make := exec.Command("make", "--no-print-directory", "helm")
		make.Dir = root
		out, err := make.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "%s", out)
		helms, _ := filepath.Glob(filepath.Join(root, "bin", "helm-*"))
		Expect(helms).NotTo(BeEmpty())
		bin, err := filepath.Abs(helms[0])
		Expect(err).NotTo(HaveOccurred())
		helm := func(args ...string) string {
			cmd := exec.Command(bin, args...)
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "helm %s: %s", strings.Join(args, " "), out)
			return string(out)
		}
		Expect(helm("lint", "dist/chart", "--strict")).To(ContainSubstring("1 chart(s) linted, 0 chart(s) failed"))

		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mdm-chart"}}
		if err := k8sClient.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
		rendered := helm("template", "kubemdm", "dist/chart", "--namespace", "mdm-chart",
			"--set", "gateway.host=mdm.test.example,gateway.service.type=LoadBalancer,manager.image.tag=v9.9.9,manager.resources.limits.memory=1Gi")
		Expect(rendered).To(ContainSubstring(`host: "mdm.test.example"`))
		Expect(rendered).To(ContainSubstring("type: LoadBalancer"))
		Expect(rendered).To(ContainSubstring("image: ghcr.io/kubemdm/kubemdm:v9.9.9"))
		Expect(rendered).To(ContainSubstring("memory: 1Gi"))
		Expect(rendered).To(ContainSubstring("cert-manager.io/inject-ca-from: mdm-chart/kubemdm-serving-cert"))
		Expect(rendered).NotTo(ContainSubstring("kind: ServiceMonitor"))
		Expect(rendered).NotTo(ContainSubstring("caBundle"))
		Expect(rendered).To(ContainSubstring("kubemdm.io/gateway-address:"), "a new address restarts the manager")
		withPort := helm("template", "kubemdm", "dist/chart", "--set", "gateway.port=7443")
		Expect(withPort).To(MatchRegexp(`(?m)^\s+port: 7443$`), "the gateway Service listens on the public port")

		var kept []string
		for _, doc := range strings.Split(rendered, "\n---\n") {
			if strings.Contains(doc, "\nkind: Issuer\n") || strings.Contains(doc, "\nkind: Certificate\n") {
				continue // cert-manager's kinds: not installed here
			}
			kept = append(kept, doc)
		}
		k := newKubectl("default")
		apply := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), "--kubeconfig", k.kubeconfig,
			"apply", "--server-side", "--dry-run=server", "--force-conflicts", "--field-manager=chart-test", "-f", "-")
		apply.Stdin = strings.NewReader(strings.Join(kept, "\n---\n"))
		out, err = apply.CombinedOutput()
		GinkgoWriter.Printf("%s\n", out)
		Expect(err).NotTo(HaveOccurred(), "%s", out)
		Expect(string(out)).To(ContainSubstring("deployment.apps/kubemdm-controller-manager serverside-applied (server dry run)"))

		// Without cert-manager and metrics, their objects are left out;
		// with the Prometheus Operator, its objects come, their alert
		// templates intact.
		noCA := exec.Command(bin, "template", "kubemdm", "dist/chart", "--set", "certManager.enable=false")
		noCA.Dir = root
		out, err = noCA.CombinedOutput()
		Expect(err).To(HaveOccurred(), "without cert-manager the webhooks' CA must be given")
		Expect(string(out)).To(ContainSubstring("webhook.caBundle is needed without cert-manager"))
		bare := helm("template", "kubemdm", "dist/chart", "--namespace", "mdm-chart",
			"--set", "certManager.enable=false,webhook.caBundle=Q0E=,metrics.enable=false,prometheus.enable=true")
		Expect(bare).To(ContainSubstring("caBundle: Q0E="))
		Expect(bare).NotTo(ContainSubstring("kind: Issuer"))
		Expect(bare).NotTo(ContainSubstring("cert-manager.io/inject-ca-from"))
		Expect(bare).To(ContainSubstring("--metrics-bind-address=0"))
		Expect(bare).To(ContainSubstring("kind: PrometheusRule"))
		Expect(bare).To(ContainSubstring("{{ $value | humanizePercentage }}"))
	})
})
