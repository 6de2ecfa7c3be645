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

	It("applies a Configuration and follows it onto three devices, then a new revision", func() {
		f := newFleet(ctx)
		for _, name := range []string{"cf-a", "cf-b", "cf-c"} {
			f.enroll(ctx, name)
		}
		f.connect("cf-a")
		f.connect("cf-b")
		k := newKubectl(f.ns)
		manifest := func(greeting string) string {
			return `apiVersion: mdm.kubemdm.io/v1alpha1
kind: Configuration
metadata: {name: motd}
spec:
  deviceSelector: {matchLabels: {mdm.kubemdm.io/enrollment-token: fleet}}
  settings:
    files: [{path: /etc/motd, content: "` + greeting + `"}]
`
		}
		out, ok := k.run(manifest("hello"), "apply", "-f", "-")
		Expect(ok).To(BeTrue(), out)
		Expect(out).To(ContainSubstring("configuration.mdm.kubemdm.io/motd created"))

		// Two devices are online and apply it; the third is pending until
		// it connects.
		out, ok = k.run("", "wait", "--for=jsonpath={.status.devices.applied}=2", "configuration/motd", "--timeout=30s")
		Expect(ok).To(BeTrue(), out)
		out, ok = k.run("", "get", "cfg", "motd", "-o", "jsonpath={.status.devices.targeted} {.status.devices.pending} {.status.revision}")
		Expect(ok).To(BeTrue(), out)
		fields := strings.Fields(out)
		Expect(fields).To(HaveLen(3))
		Expect(fields[:2]).To(Equal([]string{"3", "1"}))
		first := fields[2]
		f.connect("cf-c")
		out, ok = k.run("", "wait", "--for=jsonpath={.status.devices.applied}=3", "configuration/motd", "--timeout=30s")
		Expect(ok).To(BeTrue(), out)
		for _, name := range []string{"cf-a", "cf-b", "cf-c"} {
			out, ok = k.run("", "get", "device", name, "-o", `jsonpath={.status.configurations[?(@.name=="motd")].state} {.status.configurations[?(@.name=="motd")].revision}`)
			Expect(ok).To(BeTrue(), out)
			Expect(strings.TrimSpace(out)).To(Equal("Applied "+first), name)
		}

		// A change is a new revision, and every device follows.
		out, ok = k.run(manifest("goodbye"), "apply", "-f", "-")
		Expect(ok).To(BeTrue(), out)
		Expect(out).To(ContainSubstring("configuration.mdm.kubemdm.io/motd configured"))
		var second string
		Eventually(func() string {
			second, _ = k.run("", "get", "cfg", "motd", "-o", "jsonpath={.status.revision}")
			return second
		}).ShouldNot(Equal(first))
		for _, name := range []string{"cf-a", "cf-b", "cf-c"} {
			out, ok = k.run("", "wait", `--for=jsonpath={.status.configurations[?(@.name=="motd")].revision}=`+second, "device/"+name, "--timeout=30s")
			Expect(ok).To(BeTrue(), out)
		}
		out, ok = k.run("", "wait", "--for=jsonpath={.status.devices.applied}=3", "configuration/motd", "--timeout=30s")
		Expect(ok).To(BeTrue(), out)
	})
})
