package e2e

import (
	"context"
	"encoding/json"
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
		render := exec.Command("bash", "hack/kustomize-default.sh", pinnedTool("kustomize"))
		render.Dir = repoRoot
		render.Env = append(os.Environ(), "GATEWAY_HOST=mdm.test.example", "GATEWAY_PORT=8443")
		manifests, err := render.Output()
		Expect(err).NotTo(HaveOccurred())

		// The address reaches the manager's flags through the ConfigMap.
		var host, port, deployment string
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
			}
		}
		Expect(host).To(Equal("mdm.test.example"))
		Expect(port).To(Equal("8443"))
		Expect(deployment).To(ContainSubstring("--enrollment-host=$(GATEWAY_HOST):$(GATEWAY_PORT)"))
		Expect(deployment).To(ContainSubstring("--gateway-tls-hosts=$(GATEWAY_HOST)"))

		out := serverDryRun(ctx, "kubemdm-system", string(manifests))
		Expect(out).To(ContainSubstring("deployment.apps/kubemdm-controller-manager serverside-applied (server dry run)"))
		Expect(out).To(ContainSubstring("customresourcedefinition.apiextensions.k8s.io/configurations.mdm.kubemdm.io serverside-applied (server dry run)"))
	})
})

var _ = Describe("the Helm chart", func() {
	ctx := context.Background()

	It("lints, renders with its values, and is accepted by the apiserver in a server-side dry run", func() {
		bin := pinnedTool("helm")
		helm := func(args ...string) string {
			cmd := exec.Command(bin, args...)
			cmd.Dir = repoRoot
			out, err := cmd.CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "helm %s: %s", strings.Join(args, " "), out)
			return string(out)
		}
		Expect(helm("lint", "dist/chart", "--strict")).To(ContainSubstring("1 chart(s) linted, 0 chart(s) failed"))

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

		Expect(serverDryRun(ctx, "mdm-chart", rendered)).To(ContainSubstring("deployment.apps/kubemdm-controller-manager serverside-applied (server dry run)"))

		By("a release named fleet: every name derives from it, and every reference follows")
		fleet := helm("template", "fleet", "dist/chart", "--namespace", "mdm-fleet",
			"--set", "manager.replicas=2,manager.nodeSelector.pool=mdm,crd.keep=false,rbacHelpers.enable=false")
		objs := chartObjects(fleet)
		named := map[string]chartObject{}
		for _, o := range objs {
			named[o.Kind+"/"+o.Metadata.Name] = o
			if o.Kind == "CustomResourceDefinition" {
				Expect(o.Metadata.Name).To(HaveSuffix(".mdm.kubemdm.io"))
				Expect(o.Metadata.Annotations).NotTo(HaveKey("helm.sh/resource-policy"), "crd.keep=false")
				continue
			}
			Expect(o.Metadata.Name).To(HavePrefix("fleet-kubemdm-"), o.Kind)
			Expect(o.Metadata.Labels).To(HaveKeyWithValue("app.kubernetes.io/instance", "fleet"), o.Kind+"/"+o.Metadata.Name)
			Expect(o.Metadata.Labels).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm"), o.Kind+"/"+o.Metadata.Name)
		}
		Expect(named).NotTo(HaveKey("ClusterRole/fleet-kubemdm-admin"), "rbacHelpers.enable=false")
		Expect(named).To(HaveKey("ClusterRole/fleet-kubemdm-manager-role"), "the manager's own RBAC stays")
		manager := named["Deployment/fleet-kubemdm-controller-manager"]
		Expect(manager.Spec.Replicas).To(Equal(2))
		Expect(manager.Spec.Template.Spec.NodeSelector).To(Equal(map[string]string{"pool": "mdm"}))
		Expect(named).To(HaveKey("ServiceAccount/" + manager.Spec.Template.Spec.ServiceAccountName))
		for _, env := range manager.Spec.Template.Spec.Containers[0].Env {
			if ref := env.ValueFrom.ConfigMapKeyRef; ref != nil {
				Expect(named).To(HaveKey("ConfigMap/"+ref.Name), env.Name)
			}
		}
		for _, o := range objs {
			switch o.Kind {
			case "Service":
				Expect(o.serviceSelector()).To(HaveKeyWithValue("app.kubernetes.io/instance", "fleet"), o.Metadata.Name)
				for k, v := range o.serviceSelector() {
					Expect(manager.Spec.Template.Metadata.Labels).To(HaveKeyWithValue(k, v), "Service %s selects the manager's pods", o.Metadata.Name)
				}
			case "RoleBinding", "ClusterRoleBinding":
				roleKind := map[string]string{"RoleBinding": "Role", "ClusterRoleBinding": "ClusterRole"}[o.Kind]
				Expect(named).To(HaveKey(roleKind+"/"+o.RoleRef.Name), o.Metadata.Name)
				Expect(o.Subjects).To(ConsistOf(HaveField("Name", manager.Spec.Template.Spec.ServiceAccountName)), o.Metadata.Name)
			case "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration":
				Expect(o.Metadata.Annotations).To(HaveKeyWithValue("cert-manager.io/inject-ca-from", "mdm-fleet/fleet-kubemdm-serving-cert"))
				Expect(named).To(HaveKey("Certificate/fleet-kubemdm-serving-cert"))
				for _, w := range o.Webhooks {
					Expect(named).To(HaveKey("Service/"+w.ClientConfig.Service.Name), w.Name)
				}
			case "Certificate":
				Expect(o.Spec.DNSNames).To(ContainElement("fleet-kubemdm-webhook-service.mdm-fleet.svc"))
				Expect(named).To(HaveKey("Issuer/" + o.Spec.IssuerRef.Name))
			}
		}
		Expect(serverDryRun(ctx, "mdm-fleet", fleet)).To(ContainSubstring("deployment.apps/fleet-kubemdm-controller-manager serverside-applied (server dry run)"))

		// Without cert-manager and metrics, their objects are left out;
		// with the Prometheus Operator, its objects come, their alert
		// templates intact.
		noCA := exec.Command(bin, "template", "kubemdm", "dist/chart", "--set", "certManager.enable=false")
		noCA.Dir = repoRoot
		out, err := noCA.CombinedOutput()
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

var _ = Describe("the Prometheus Operator objects", func() {
	ctx := context.Background()

	It("are accepted by an apiserver that serves the Prometheus Operator's CRDs, from kustomize and from the chart", func() {
		// The operator's own CRDs, installed for real: a dry run of a
		// ServiceMonitor needs its kind served.
		crds := pinnedTool("prometheus-crds")
		kubectl := func(args ...string) string {
			cmd := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), append([]string{"--kubeconfig", newKubectl("default").kubeconfig}, args...)...)
			out, err := cmd.CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "kubectl %s: %s", strings.Join(args, " "), out)
			return string(out)
		}
		kubectl("apply", "--server-side", "--field-manager=install-test", "-f", crds)
		kubectl("wait", "--for=condition=Established", "--timeout=60s",
			"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")

		render := exec.Command(pinnedTool("kustomize"), "build", "config/prometheus")
		render.Dir = repoRoot
		kustomized, err := render.Output()
		Expect(err).NotTo(HaveOccurred())
		out := serverDryRun(ctx, "kubemdm-system", string(kustomized))
		Expect(out).To(ContainSubstring("servicemonitor.monitoring.coreos.com/kubemdm-controller-manager-metrics-monitor serverside-applied (server dry run)"))
		Expect(out).To(ContainSubstring("prometheusrule.monitoring.coreos.com/kubemdm-alerts serverside-applied (server dry run)"))

		chart := exec.Command(pinnedTool("helm"), "template", "kubemdm", "dist/chart", "--namespace", "mdm-chart", "--set", "prometheus.enable=true")
		chart.Dir = repoRoot
		rendered, err := chart.Output()
		Expect(err).NotTo(HaveOccurred())
		out = serverDryRun(ctx, "mdm-chart", string(rendered))
		Expect(out).To(MatchRegexp(`servicemonitor\.monitoring\.coreos\.com/\S+ serverside-applied \(server dry run\)`))
		Expect(out).To(MatchRegexp(`prometheusrule\.monitoring\.coreos\.com/\S+ serverside-applied \(server dry run\)`))
	})
})

// chartObject is what the chart tests read of a rendered object.
type chartObject struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name        string            `json:"name"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Replicas  int             `json:"replicas"`
		Selector  json.RawMessage `json:"selector"`
		DNSNames  []string        `json:"dnsNames"`
		IssuerRef struct {
			Name string `json:"name"`
		} `json:"issuerRef"`
		Template struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				ServiceAccountName string             `json:"serviceAccountName"`
				NodeSelector       map[string]string  `json:"nodeSelector"`
				Containers         []corev1.Container `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
	RoleRef struct {
		Name string `json:"name"`
	} `json:"roleRef"`
	Subjects []struct {
		Name string `json:"name"`
	} `json:"subjects"`
	Webhooks []struct {
		Name         string `json:"name"`
		ClientConfig struct {
			Service struct {
				Name string `json:"name"`
			} `json:"service"`
		} `json:"clientConfig"`
	} `json:"webhooks"`
}

// chartObjects reads helm template's output.
func chartObjects(rendered string) []chartObject {
	GinkgoHelper()
	var objs []chartObject
	for _, doc := range strings.Split(rendered, "\n---\n") {
		var o chartObject
		Expect(yaml.Unmarshal([]byte(doc), &o)).To(Succeed(), doc)
		if o.Kind != "" {
			objs = append(objs, o)
		}
	}
	return objs
}

// serviceSelector is a Service's selector; a Deployment's is a
// LabelSelector, which this does not read.
func (o chartObject) serviceSelector() map[string]string {
	GinkgoHelper()
	var m map[string]string
	Expect(json.Unmarshal(o.Spec.Selector, &m)).To(Succeed())
	return m
}

// repoRoot is the checkout, from this package.
var repoRoot = filepath.Join("..", "..")

// pinnedTool is the absolute path of a tool the Makefile pins into bin/,
// installing it first if needed.
func pinnedTool(name string) string {
	GinkgoHelper()
	install := exec.Command("make", "--no-print-directory", name)
	install.Dir = repoRoot
	out, err := install.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "%s", out)
	found, _ := filepath.Glob(filepath.Join(repoRoot, "bin", name+"-*"))
	Expect(found).NotTo(BeEmpty())
	abs, err := filepath.Abs(found[0])
	Expect(err).NotTo(HaveOccurred())
	return abs
}

// serverDryRun has the apiserver validate rendered manifests, installed in
// namespace, by a server-side apply dry run, and returns kubectl's answer.
// cert-manager's kinds are left out: it is not installed here.
func serverDryRun(ctx context.Context, namespace, rendered string) string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := k8sClient.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
	var kept []string
	for _, doc := range strings.Split(rendered, "\n---\n") {
		if strings.Contains(doc, "\nkind: Issuer\n") || strings.Contains(doc, "\nkind: Certificate\n") {
			continue
		}
		kept = append(kept, doc)
	}
	apply := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), "--kubeconfig", newKubectl("default").kubeconfig,
		"apply", "--server-side", "--dry-run=server", "--force-conflicts", "--field-manager=install-test", "-f", "-")
	apply.Stdin = strings.NewReader(strings.Join(kept, "\n---\n"))
	out, err := apply.CombinedOutput()
	GinkgoWriter.Printf("%s\n", out)
	Expect(err).NotTo(HaveOccurred(), "%s", out)
	return string(out)
}
