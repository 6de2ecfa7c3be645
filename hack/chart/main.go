// Command chart writes the Helm chart's templates (dist/chart/templates)
// from the rendered kustomize tree (config/default, then
// config/prometheus), so that the chart and make deploy install the same
// objects: make chart runs it, and make verify-generated finds a stale
// chart. Chart.yaml, values.yaml, templates/_helpers.tpl and templates/NOTES.txt
// are written by hand.
package main

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Placeholders put into the objects, then swapped for template actions.
const (
	phNamespace   = "__NAMESPACE__"
	phImage       = "__IMAGE__"
	phHost        = "__GATEWAY_HOST__"
	phPort        = "__GATEWAY_PORT__"
	phServiceType = "__GATEWAY_SERVICE_TYPE__"
	phResources   = "__RESOURCES__"
	phMetricsBind = "__METRICS_BIND__"
	phGatewaySum  = "__GATEWAY_CHECKSUM__"
	phServicePort = "__GATEWAY_SERVICE_PORT__"
	// phInject and phCABundle stand for lines that exist with, or
	// without, cert-manager.
	phInject   = "__CERT_MANAGER_INJECT__"
	phCABundle = "__CA_BUNDLE__"
	// phLabels stands for the chart's labels on every object; phRelease
	// for the release's name in the selectors, so that two releases
	// select their own pods; phKeep for the CRDs' keep policy; phPod for
	// the pod's scheduling and pull-secret values.
	phLabels     = "__CHART_LABELS__"
	phRelease    = "__RELEASE__"
	phKeep       = "__CRD_KEEP__"
	phPod        = "__POD_VALUES__"
	phReplicas   = "__REPLICAS__"
	phPullPolicy = "__PULL_POLICY__"
)

var actions = strings.NewReplacer(
	phNamespace, "{{ .Release.Namespace }}",
	phImage, `{{ .Values.manager.image.repository }}:{{ .Values.manager.image.tag | default .Chart.AppVersion }}`,
	phHost, "{{ .Values.gateway.host | quote }}",
	phPort, "{{ .Values.gateway.port | quote }}",
	phServiceType, "{{ .Values.gateway.service.type }}",
	phMetricsBind, `{{ if .Values.metrics.enable }}:8443{{ else }}0{{ end }}`,
	// A new address restarts the manager, which reads it at start.
	phGatewaySum, `{{ printf "%s:%v" .Values.gateway.host .Values.gateway.port | sha256sum | trunc 16 | quote }}`,
	phServicePort, "{{ .Values.gateway.port }}",
	phRelease, "{{ .Release.Name }}",
	phReplicas, "{{ .Values.manager.replicas }}",
	phPullPolicy, "{{ .Values.manager.image.pullPolicy }}",
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: chart TEMPLATES_DIR < rendered.yaml")
		os.Exit(2)
	}
	in, err := io.ReadAll(os.Stdin)
	if err == nil {
		err = write(os.Args[1], in)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func write(dir string, rendered []byte) error {
	// Only the generated directories: NOTES.txt is written by hand.
	for _, sub := range []string{"crd", "rbac", "manager", "webhook", "certmanager", "metrics", "gateway", "prometheus"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	gatewayConfigMap := ""
	var objects []map[string]any
	for _, doc := range regexp.MustCompile(`(?m)^---\n`).Split(string(rendered), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		obj := map[string]any{}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return err
		}
		if kind(obj) == "ConfigMap" && strings.HasPrefix(name(obj), "gateway-") {
			gatewayConfigMap = name(obj)
		}
		objects = append(objects, obj)
	}
	// Every object's name derives from the release, as references to it
	// do: two releases make two sets of cluster-wide objects. The CRDs
	// keep theirs, which the API fixes.
	var suffixes []string
	for _, obj := range objects {
		if n := name(obj); kind(obj) != "Namespace" && strings.HasPrefix(n, "kubemdm-") {
			suffixes = append(suffixes, strings.TrimPrefix(n, "kubemdm-"))
		}
		if kind(obj) == "ConfigMap" && strings.HasPrefix(name(obj), "gateway-") {
			suffixes = append(suffixes, "gateway")
		}
	}
	// Longest first: controller-manager-metrics-service before
	// controller-manager.
	slices.SortFunc(suffixes, func(a, b string) int { return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b)) })
	suffixes = slices.Compact(suffixes)
	quoted := make([]string, len(suffixes))
	for i, x := range suffixes {
		quoted[i] = regexp.QuoteMeta(x)
	}
	names := regexp.MustCompile(`\bkubemdm-(` + strings.Join(quoted, "|") + `)\b`)
	written := map[string]bool{}
	for _, obj := range objects {
		if kind(obj) == "Namespace" {
			continue // Helm installs into the release's namespace
		}
		sub, file, guard, err := place(obj)
		if err != nil {
			return err
		}
		raw, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		// Alert templates ({{ $value }}) are Prometheus's, not Helm's.
		text := strings.NewReplacer("{{", "{{`{{`}}", "}}", "{{`}}`}}").Replace(string(raw))
		text = strings.ReplaceAll(text, "kubemdm-system", phNamespace)
		if gatewayConfigMap != "" {
			text = strings.ReplaceAll(text, gatewayConfigMap, "kubemdm-gateway")
		}
		text = templateLines(text)
		text = names.ReplaceAllString(text, `{{ include "kubemdm.resourceName" (dict "suffix" "$1" "context" $$) }}`)
		text = actions.Replace(text)
		if guard != "" {
			text = "{{- if " + guard + " }}\n" + text + "{{- end }}\n"
		}
		path := filepath.Join(dir, sub, file)
		if written[path] {
			return fmt.Errorf("two objects would be written to %s", path)
		}
		written[path] = true
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		header := "# Generated by make chart from config/; do not edit.\n"
		if err := os.WriteFile(path, []byte(header+text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// place sets an object's values and says where it goes and on which value
// it depends.
func place(obj map[string]any) (dir, file, guard string, err error) {
	k, n := kind(obj), name(obj)
	file = strings.ToLower(k) + "-" + strings.TrimPrefix(n, "kubemdm-") + ".yaml"
	// The chart's labels replace config/'s of the same keys (managed-by
	// kustomize): a key twice is invalid YAML.
	if labels, ok := dig(obj, "metadata", "labels").(map[string]any); ok {
		for _, key := range []string{"helm.sh/chart", instanceLabel, "app.kubernetes.io/managed-by", "app.kubernetes.io/version"} {
			delete(labels, key)
		}
	}
	set(obj, "x", "metadata", "labels", phLabels)
	switch k {
	case "CustomResourceDefinition":
		annotate(obj, phKeep, "x")
		return "crd", strings.TrimSuffix(n, ".mdm.kubemdm.io") + ".yaml", ".Values.crd.enable", nil
	case "Issuer", "Certificate":
		return "certmanager", file, ".Values.certManager.enable", nil
	case "ServiceMonitor", "PrometheusRule":
		if k == "ServiceMonitor" {
			set(obj, phRelease, "spec", "selector", "matchLabels", instanceLabel)
			// Without the metrics Service there is nothing to scrape.
			return "prometheus", file, "and .Values.prometheus.enable .Values.metrics.enable", nil
		}
		return "prometheus", file, ".Values.prometheus.enable", nil
	case "ConfigMap":
		if !strings.HasPrefix(n, "gateway-") {
			return "", "", "", fmt.Errorf("ConfigMap %s: only the gateway's is known to the chart", n)
		}
		set(obj, "kubemdm-gateway", "metadata", "name")
		set(obj, phHost, "data", "host")
		set(obj, phPort, "data", "port")
		return "gateway", "configmap-gateway.yaml", "", nil
	case "Deployment":
		containers := dig(obj, "spec", "template", "spec", "containers").([]any)
		c := containers[0].(map[string]any)
		c["image"] = phImage
		c["resources"] = phResources
		args := c["args"].([]any)
		for i, a := range args {
			if s, ok := a.(string); ok && strings.HasPrefix(s, "--metrics-bind-address=") {
				args[i] = "--metrics-bind-address=" + phMetricsBind
			}
		}
		c["imagePullPolicy"] = phPullPolicy
		set(obj, phGatewaySum, "spec", "template", "metadata", "annotations", "kubemdm.io/gateway-address")
		set(obj, phReplicas, "spec", "replicas")
		set(obj, phRelease, "spec", "selector", "matchLabels", instanceLabel)
		set(obj, phRelease, "spec", "template", "metadata", "labels", instanceLabel)
		set(obj, "x", "spec", "template", "spec", phPod)
		return "manager", file, "", nil
	case "Service":
		set(obj, phRelease, "spec", "selector", instanceLabel)
		switch {
		case strings.Contains(n, "metrics"):
			return "metrics", file, ".Values.metrics.enable", nil
		case strings.Contains(n, "gateway"):
			set(obj, phServiceType, "spec", "type")
			ports := dig(obj, "spec", "ports").([]any)
			ports[0].(map[string]any)["port"] = phServicePort
			return "gateway", file, "", nil
		}
		return "webhook", file, "", nil
	case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
		// cert-manager injects the CA; without it, the value gives it.
		if annotations, ok := dig(obj, "metadata", "annotations").(map[string]any); ok {
			delete(annotations, "cert-manager.io/inject-ca-from")
			annotations[phInject] = "x"
		}
		for _, w := range dig(obj, "webhooks").([]any) {
			set(w.(map[string]any), "x", "clientConfig", phCABundle)
		}
		return "webhook", file, "", nil
	case "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount":
		// The roles for people (admin, operator, viewer) are helpers a
		// cluster may not want; the manager's own are always needed.
		if k == "ClusterRole" && helperRoles[strings.TrimPrefix(n, "kubemdm-")] {
			return "rbac", file, ".Values.rbacHelpers.enable", nil
		}
		return "rbac", file, "", nil
	}
	return "", "", "", fmt.Errorf("%s %s: the chart does not know where this kind goes", k, n)
}

// instanceLabel tells two releases' pods apart in selectors.
const instanceLabel = "app.kubernetes.io/instance"

// helperRoles are the ClusterRoles for people, aggregated or bound by hand.
var helperRoles = map[string]bool{"admin": true, "operator": true, "viewer": true}

// templateLines turns the lines that hold a value's structure into
// template actions: the manager's resources, and the lines that exist only
// with cert-manager (its annotation) or only without it (the caBundle).
func templateLines(text string) string {
	var out bytes.Buffer
	lines := strings.Split(text, "\n")
	for i, line := range lines {
		indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
		switch strings.TrimSpace(line) {
		case "resources: " + phResources:
			fmt.Fprintf(&out, "%sresources:\n%s{{- toYaml .Values.manager.resources | nindent %d }}\n", indent, indent, len(indent)+2)
			continue
		case phInject + ": x":
			fmt.Fprintf(&out, "{{- if .Values.certManager.enable }}\n%scert-manager.io/inject-ca-from: %s/kubemdm-serving-cert\n{{- end }}\n", indent, phNamespace)
			continue
		case phLabels + ": x":
			fmt.Fprintf(&out, "%s{{- include \"kubemdm.labels\" $ | nindent %d }}\n", indent, len(indent))
			continue
		case phKeep + ": x":
			fmt.Fprintf(&out, "{{- if .Values.crd.keep }}\n%shelm.sh/resource-policy: keep\n{{- end }}\n", indent)
			continue
		case phPod + ": x":
			for _, field := range []string{"imagePullSecrets", "nodeSelector", "tolerations", "affinity"} {
				fmt.Fprintf(&out, "{{- with .Values.manager.%s }}\n%s%s:\n%s{{- toYaml . | nindent %d }}\n{{- end }}\n", field, indent, field, indent, len(indent)+2)
			}
			continue
		case phCABundle + ": x":
			fmt.Fprintf(&out, "{{- if not .Values.certManager.enable }}\n%scaBundle: {{ required \"webhook.caBundle is needed without cert-manager\" .Values.webhook.caBundle }}\n{{- end }}\n", indent)
			continue
		}
		out.WriteString(line)
		if i < len(lines)-1 {
			out.WriteString("\n")
		}
	}
	return out.String()
}

func kind(obj map[string]any) string { s, _ := obj["kind"].(string); return s }
func name(obj map[string]any) string { s, _ := dig(obj, "metadata", "name").(string); return s }

func dig(obj map[string]any, path ...string) any {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func set(obj map[string]any, value any, path ...string) {
	m := obj
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = value
}

func annotate(obj map[string]any, key, value string) {
	set(obj, value, "metadata", "annotations", key)
}
