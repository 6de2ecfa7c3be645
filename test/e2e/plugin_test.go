package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/enrollment"
	"github.com/kubemdm/kubemdm/internal/qrscan"
)

// plugin runs "kubectl mdm …" with the real kubectl, which finds the
// plugin binary on PATH.
type plugin struct {
	k   *kubectl
	bin string
}

func newPlugin(ns string) *plugin {
	bin := GinkgoT().TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "kubectl-mdm"), "./cmd/kubectl-mdm")
	build.Dir = repoRoot
	out, err := build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "%s", out)
	return &plugin{k: newKubectl(ns), bin: bin}
}

// run returns what kubectl mdm printed and its exit code.
func (p *plugin) run(args ...string) (string, int) {
	stdout, stderr, code := p.exec(p.k.kubeconfig, args...)
	return stderr + stdout, code
}

// exec runs kubectl mdm with KUBECONFIG set to kubeconfig and returns its
// stdout and stderr apart.
func (p *plugin) exec(kubeconfig string, args ...string) (stdout, stderr string, code int) {
	cmd := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), append([]string{"mdm", "-n", p.k.ns}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+p.bin+":"+os.Getenv("PATH"))
	cmd.Stdin = strings.NewReader("") // not a terminal, as in a script
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	GinkgoWriter.Printf("$ kubectl mdm %s\n%s%s\n", strings.Join(args, " "), errOut.String(), out.String())
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode()
	}
	Expect(err).NotTo(HaveOccurred())
	return out.String(), errOut.String(), 0
}

var _ = Describe("kubectl mdm", func() {
	ctx := context.Background()

	It("runs actions, refuses an unconfirmed destructive one, dry-runs eligibility, queries devices and edits attributes", func() {
		f := newFleet(ctx)
		for _, name := range []string{"plg-1", "plg-2"} {
			f.enroll(ctx, name)
			f.connect(name)
		}
		// A device imported from an asset list, never enrolled, never seen.
		Expect(k8sClient.Create(ctx, &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "plg-box"},
			Spec: mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformLinux, SerialNumber: "BOX-1"}})).To(Succeed())
		p := newPlugin(f.ns)
		actions := func() int {
			list := &mdmv1alpha1.DeviceActionList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(f.ns))).To(Succeed())
			return len(list.Items)
		}

		By("lock --wait follows the action to each device's outcome")
		out, code := p.run("lock", "plg-1", "plg-2", "--wait")
		Expect(code).To(Equal(0))
		Expect(out).To(MatchRegexp(`deviceaction\.mdm\.kubemdm\.io/lock-\w+ created`))
		Expect(out).To(ContainSubstring("plg-1 Succeeded"))
		Expect(out).To(MatchRegexp(`(?m)^plg-2\s+Succeeded\s+0`))
		Expect(f.devices["plg-1"].Observe().Locked).To(BeTrue())

		By("a destructive action without --confirm is refused, and nothing is created")
		before := actions()
		out, code = p.run("wipe", "plg-2")
		Expect(code).To(Equal(2))
		Expect(out).To(ContainSubstring("give --confirm Wipe"))
		out, code = p.run("wipe", "plg-2", "--confirm", "wipe")
		Expect(code).To(Equal(2), out)
		Expect(actions()).To(Equal(before))
		Expect(f.devices["plg-2"].Observe().Wiped).To(BeFalse())

		By("--dry-run shows each device's eligibility and sends nothing")
		out, code = p.run("deprovision", "plg-1", "--reason", "RetiringDevice", "--dry-run")
		Expect(code).To(Equal(1))
		Expect(out).To(MatchRegexp(`(?m)^plg-1\s+false\s+12\s+Deprovision is not available on Linux devices`))
		out, code = p.run("restart", "-l", "mdm.kubemdm.io/enrollment-token=fleet", "--dry-run")
		Expect(code).To(Equal(0), out)
		Expect(out).To(MatchRegexp(`(?m)^plg-1\s+true\s+0`))
		Expect(f.devices["plg-1"].Observe().Boots).To(Equal(0))

		By("devices by when they were seen")
		out, code = p.run("devices", "--not-seen", "7d")
		Expect(code).To(Equal(0))
		Expect(out).To(MatchRegexp(`(?m)^plg-box\s+Linux\s+Registered\s+False\s+<never>`))
		Expect(out).NotTo(ContainSubstring("plg-1"))
		out, _ = p.run("devices", "--seen-within", "1h", "-o", "name")
		Expect(out).To(Equal("device.mdm.kubemdm.io/plg-1\ndevice.mdm.kubemdm.io/plg-2\n"))
		out, _ = p.run("devices", "--enrolled-within", "30d", "-o", "name")
		Expect(out).NotTo(ContainSubstring("plg-box"))

		By("--kubeconfig and --context choose the cluster, over KUBECONFIG and the current context")
		cfg, err := clientcmd.LoadFromFile(p.k.kubeconfig)
		Expect(err).NotTo(HaveOccurred())
		reachable := cfg.CurrentContext
		cfg.Clusters["nowhere"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1"}
		cfg.Contexts["nowhere"] = &clientcmdapi.Context{Cluster: "nowhere", AuthInfo: cfg.Contexts[reachable].AuthInfo}
		cfg.CurrentContext = "nowhere"
		twoContexts := filepath.Join(GinkgoT().TempDir(), "two-contexts")
		Expect(clientcmd.WriteToFile(*cfg, twoContexts)).To(Succeed())
		_, stderr, code := p.exec("/nonexistent", "--kubeconfig", twoContexts, "devices")
		Expect(code).To(Equal(1))
		Expect(stderr).To(ContainSubstring("127.0.0.1:1"), "the current context's cluster")
		stdout, _, code := p.exec("/nonexistent", "--kubeconfig", twoContexts, "--context", reachable, "devices", "-o", "json")
		Expect(code).To(Equal(0))
		devices := &mdmv1alpha1.DeviceList{}
		Expect(json.Unmarshal([]byte(stdout), devices)).To(Succeed(), "stdout holds the list alone")
		Expect(devices.Items).To(HaveLen(3))
		Expect(devices.Items[0].Kind).To(Equal("Device"))

		By("-o json on an action verb: the finished action alone on stdout, the progress on stderr")
		stdout, stderr, code = p.exec(p.k.kubeconfig, "sync", "plg-1", "--wait", "-o", "json")
		Expect(code).To(Equal(0), stderr)
		synced := &mdmv1alpha1.DeviceAction{}
		Expect(json.Unmarshal([]byte(stdout), synced)).To(Succeed(), stdout)
		Expect(synced.Status.Phase).To(Equal(mdmv1alpha1.ActionSucceeded))
		Expect(stderr).To(ContainSubstring("plg-1 Succeeded"))

		By("no device matches: kubectl's words, on stderr")
		stdout, stderr, code = p.exec(p.k.kubeconfig, "devices", "--attr", "cityId=Atlantis")
		Expect(code).To(Equal(0))
		Expect(stdout).To(BeEmpty())
		Expect(stderr).To(Equal("No resources found in " + f.ns + " namespace.\n"))

		By("the four attribute operations, and a query by attribute")
		_, code = p.run("attrs", "patch", "plg-1", "cityId=SF", "floor=3")
		Expect(code).To(Equal(0))
		out, _ = p.run("attrs", "get", "plg-1")
		Expect(out).To(Equal("cityId=SF\nfloor=3\n"))
		out, _ = p.run("devices", "--attr", "cityId=SF", "-o", "name")
		Expect(out).To(Equal("device.mdm.kubemdm.io/plg-1\n"))
		p.run("attrs", "remove", "plg-1", "floor")
		out, _ = p.run("attrs", "get", "plg-1")
		Expect(out).To(Equal("cityId=SF\n"))
		p.run("attrs", "replace", "plg-1", "team=sre")
		out, _ = p.run("attrs", "get", "plg-1")
		Expect(out).To(Equal("team=sre\n"))
		out, code = p.run("attrs", "get", "plg-1", "-o", "json")
		Expect(code).To(Equal(0))
		Expect(out).To(MatchJSON(`{"team": "sre"}`))
		out, _ = p.run("attrs", "get", "plg-box", "-o", "yaml")
		Expect(out).To(Equal("{}\n"), "a device without attributes")

		By("watch follows an action created earlier")
		name, code := p.run("message", "plg-2", "--title", "IT", "--body", "Please update", "-o", "name")
		Expect(code).To(Equal(0))
		out, code = p.run("watch", strings.TrimSpace(name))
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring("plg-2 Succeeded"))
		Expect(f.devices["plg-2"].Observe().Messages).To(Equal([]string{"IT: Please update"}))
	})
})

var _ = Describe("kubectl mdm verbs", func() {
	ctx := context.Background()

	It("runs every action verb to the end on simulated devices", func() {
		f := newFleet(ctx)
		for _, name := range []string{"vb-1", "vb-retire", "vb-unenroll", "vb-wipe"} {
			f.enroll(ctx, name)
			f.connect(name)
		}
		chromebooks := newPlatformFleet(ctx, mdmv1alpha1.PlatformChromeOS)
		chromebooks.enroll(ctx, "vb-cb")
		chromebooks.connect("vb-cb")
		p := newPlugin(f.ns)
		for _, args := range [][]string{
			{"lock", "vb-1"}, {"unlock", "vb-1"}, {"restart", "vb-1"}, {"sync", "vb-1"},
			{"message", "vb-1", "--title", "IT", "--body", "Hello"},
			{"disable", "vb-1"}, {"reenable", "vb-1"},
			{"retire", "vb-retire", "--confirm", "Retire"},
			{"unenroll", "vb-unenroll", "--confirm", "Unenroll"},
			{"wipe", "vb-wipe", "--confirm", "Wipe"},
		} {
			out, code := p.run(append(args, "--wait")...)
			Expect(code).To(Equal(0), "kubectl mdm %s: %s", strings.Join(args, " "), out)
			Expect(out).To(MatchRegexp(`(?m)^`+args[1]+`\s+Succeeded\s+0`), "kubectl mdm %s", strings.Join(args, " "))
		}
		out, code := p.run("lock", "vb-1", "--wait", "-o", "wide")
		Expect(code).To(Equal(0), out)
		Expect(out).To(MatchRegexp(`(?m)^DEVICE\s+PHASE\s+CODE\s+MESSAGE\s+DELIVERED IN\s+COMPLETED IN$`))
		Expect(out).To(MatchRegexp(`(?m)^vb-1\s+Succeeded\s+0\s+Lock done\s+\d+s\s+\d+s$`), "how long the lock took to reach the device and to finish")
		p.run("unlock", "vb-1", "--wait")
		m := f.devices["vb-1"].Observe()
		Expect(m.Boots).To(Equal(1))
		Expect(m.Messages).To(Equal([]string{"IT: Hello"}))
		Expect(m.Disabled).To(BeFalse(), "disabled, then reenabled")
		Expect(f.devices["vb-retire"].Observe().Released).To(BeTrue())
		Expect(f.devices["vb-unenroll"].Observe().Released).To(BeTrue())
		Expect(f.devices["vb-wipe"].Observe().Wiped).To(BeTrue())

		cb := newPlugin(chromebooks.ns)
		out, code = cb.run("deprovision", "vb-cb", "--reason", "RetiringDevice", "--confirm", "Deprovision", "--wait")
		Expect(code).To(Equal(0), out)
		Expect(chromebooks.devices["vb-cb"].Observe().Released).To(BeTrue())
	})
})

var _ = Describe("kubectl mdm token", func() {
	ctx := context.Background()

	It("creates a token and prints its QR code, in the terminal and as a PNG, both decoding to its payload", func() {
		ns := newFleet(ctx).ns
		p := newPlugin(ns)
		pngFile := filepath.Join(GinkgoT().TempDir(), "qr.png")
		out, code := p.run("token", "create", "phones", "--platform", "Android", "--one-time", "--ttl", "48h", "--qr", "--qr-png", pngFile)
		Expect(code).To(Equal(0), out)
		Expect(out).To(HavePrefix("enrollmenttoken.mdm.kubemdm.io/phones created\nQR code written to " + pngFile + "\n"))
		token := &mdmv1alpha1.EnrollmentToken{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "phones"}, token)).To(Succeed())
		Expect(token.Spec.Perpetual).To(BeFalse())
		Expect(token.Spec.TTL.Duration).To(Equal(48 * time.Hour))
		secret := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: token.Status.SecretRef.Name}, secret)).To(Succeed())
		payload := string(secret.Data[mdmv1alpha1.TokenSecretQRJSONKey])
		Expect(payload).To(ContainSubstring("PROVISIONING"))

		drawing := strings.SplitN(out, pngFile+"\n", 2)[1]
		Expect(decodeQR(enrollment.QRCodeTextImage(drawing))).To(Equal(payload), "the terminal's QR code")
		f, err := os.Open(pngFile)
		Expect(err).NotTo(HaveOccurred())
		defer f.Close()
		img, err := png.Decode(f)
		Expect(err).NotTo(HaveOccurred())
		Expect(decodeQR(img)).To(Equal(payload), "the PNG")

		out, code = p.run("token", "qr", "phones")
		Expect(code).To(Equal(0))
		Expect(decodeQR(enrollment.QRCodeTextImage(out))).To(Equal(payload), "token qr of an existing token")

		By("-o yaml prints the issued token, and the QR code cannot share stdout with it")
		out, code = p.run("token", "create", "laptops", "--platform", "Linux", "--qr", "-o", "yaml")
		Expect(code).To(Equal(1))
		Expect(out).To(ContainSubstring("--qr draws on stdout"))
		laptopsPNG := filepath.Join(GinkgoT().TempDir(), "laptops.png")
		cmd := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), "mdm", "-n", ns, "token", "create", "laptops", "--platform", "Linux", "--qr-png", laptopsPNG, "-o", "yaml")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+p.k.kubeconfig, "PATH="+p.bin+":"+os.Getenv("PATH"))
		yamlOut, err := cmd.Output()
		Expect(err).NotTo(HaveOccurred())
		issued := &mdmv1alpha1.EnrollmentToken{}
		Expect(yaml.UnmarshalStrict(yamlOut, issued)).To(Succeed(), "stdout holds the token alone:\n%s", yamlOut)
		Expect(issued.Kind).To(Equal("EnrollmentToken"))
		Expect(issued.Spec.Perpetual).To(BeTrue())
		Expect(issued.Status.SecretRef).NotTo(BeNil(), "printed once issued, with its status")
		Expect(laptopsPNG).To(BeAnExistingFile())
	})
})

func decodeQR(img image.Image) string {
	GinkgoHelper()
	text, err := qrscan.Decode(img)
	Expect(err).NotTo(HaveOccurred())
	return text
}
