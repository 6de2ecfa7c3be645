package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// kubectl runs the kubectl built with the control plane, as a user of the
// system-masters group, in namespace ns.
type kubectl struct {
	kubeconfig string
	ns         string
}

func newKubectl(ns string) *kubectl {
	user, err := env.Environment.ControlPlane.AddUser(envtest.User{Name: "kubectl-e2e", Groups: []string{"system:masters"}}, env.Config)
	Expect(err).NotTo(HaveOccurred())
	raw, err := user.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(os.WriteFile(path, raw, 0o600)).To(Succeed())
	return &kubectl{kubeconfig: path, ns: ns}
}

// run returns combined output and whether kubectl succeeded.
func (k *kubectl) run(stdin string, args ...string) (string, bool) {
	cmd := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"),
		append([]string{"--kubeconfig", k.kubeconfig, "-n", k.ns}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	GinkgoWriter.Printf("$ kubectl %s\n%s\n", strings.Join(args, " "), out)
	return string(out), err == nil
}

var _ = Describe("kubectl", func() {
	ctx := context.Background()

	It("applies the samples, sees devices connect and runs an action, as a person would", func() {
		f := newFleet(ctx)
		f.enroll(ctx, "kc-1")
		f.connect("kc-1")
		k := newKubectl(f.ns)

		out, ok := k.run("", "apply", "-f", filepath.Join("..", "..", "config", "samples"))
		Expect(ok).To(BeTrue(), out)
		Expect(out).To(ContainSubstring("device.mdm.kubemdm.io/pixel-7-0042 created"))
		Expect(out).To(ContainSubstring("Warning: device chromebook-0193: not found (code 5)"))

		out, ok = k.run("", "wait", "--for=condition=Ready", "device/kc-1", "--timeout=30s")
		Expect(ok).To(BeTrue(), out)
		out, ok = k.run("", "get", "devices", "--field-selector", "status.phase=Enrolled")
		Expect(ok).To(BeTrue(), out)
		Expect(out).To(MatchRegexp(`kc-1\s+Linux\s+Enrolled\s+True\s+True\s+Compliant`))
		Expect(out).NotTo(ContainSubstring("pixel-7-0042"))

		out, ok = k.run(`apiVersion: mdm.kubemdm.io/v1alpha1
kind: DeviceAction
metadata: {name: kc-lock}
spec: {action: Lock, devices: [kc-1]}
`, "create", "-f", "-")
		Expect(ok).To(BeTrue(), out)
		out, ok = k.run("", "wait", "--for=jsonpath={.status.phase}=Succeeded", "deviceaction/kc-lock", "--timeout=30s")
		Expect(ok).To(BeTrue(), out)

		out, ok = k.run(`apiVersion: mdm.kubemdm.io/v1alpha1
kind: DeviceAction
metadata: {name: kc-wipe}
spec: {action: Wipe, devices: [kc-1]}
`, "create", "-f", "-")
		Expect(ok).To(BeFalse())
		Expect(out).To(ContainSubstring(`spec.confirm: Invalid value: confirm must be "Wipe" to run this destructive action`))

		out, ok = k.run("", "patch", "device", "kc-1", "--subresource=status", "--type=merge",
			"-p", `{"status":{"unenrollment":{"phase":"pending"}}}`)
		Expect(ok).To(BeTrue(), out)
		out, ok = k.run("", "get", "device", "kc-1", "-o", "jsonpath={.status.unenrollment.phase} {.status.unenrollment.executionDate}")
		Expect(ok).To(BeTrue(), out)
		// executionDate is null, as in the source API.
		Expect(strings.TrimSpace(out)).To(Equal("pending null"))

		out, ok = k.run("", "get", "mdm")
		Expect(ok).To(BeTrue(), out)
		Expect(out).To(ContainSubstring("deviceaction.mdm.kubemdm.io/kc-lock"))
		Expect(out).To(ContainSubstring("enrollmenttoken.mdm.kubemdm.io/warehouse-phones"))
	})
})
