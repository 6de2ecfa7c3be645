package fault

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/enrollment"
)

// The packaged agent's path: kubemdm-agent enroll once, by hand, with the
// token and CA pin of the enrollment payload; then the service, started
// with neither, runs from the state directory.
var _ = Describe("kubemdm-agent enroll", func() {
	It("enrolls once with a CA pin and exits, refuses a wrong pin and keeps nothing, and the service then runs from the saved state", func(ctx SpecContext) {
		addr := freeAddr()
		startManager("enrollcli", addr, addr, true)
		nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "fault-enroll-"}}
		Expect(k8sClient.Create(ctx, nsObj)).To(Succeed())
		ns := nsObj.Name
		value, _ := token(ctx, ns, "box")
		secret := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "box-token"}, secret)).To(Succeed())
		// The pin as a person reads it off the enrollment payload.
		pin := regexp.MustCompile(`"` + regexp.QuoteMeta(enrollment.ExtraGatewayCAPin) + `":\s*"([0-9a-f]{64})"`).
			FindStringSubmatch(string(secret.Data[mdmv1alpha1.TokenSecretQRJSONKey]))
		Expect(pin).To(HaveLen(2), "the payload names the CA pin: %s", secret.Data[mdmv1alpha1.TokenSecretQRJSONKey])
		stateDir := filepath.Join(GinkgoT().TempDir(), "state")
		agent := func(args ...string) (string, int) {
			cmd := exec.Command(agentBin, args...)
			out, err := cmd.CombinedOutput()
			GinkgoWriter.Printf("$ kubemdm-agent %s\n%s\n", strings.Join(args, " "), out)
			if exit, ok := err.(*exec.ExitError); ok {
				return string(out), exit.ExitCode()
			}
			Expect(err).NotTo(HaveOccurred())
			return string(out), 0
		}
		enroll := func(extra ...string) (string, int) {
			return agent(append([]string{"enroll", "--gateway", addr, "--token", value, "--state-dir", stateDir, "--platform", "simulated"}, extra...)...)
		}
		devices := func() []mdmv1alpha1.Device {
			list := &mdmv1alpha1.DeviceList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			return list.Items
		}

		By("without a way to trust the gateway, it refuses before dialling")
		out, code := enroll()
		Expect(code).To(Equal(1))
		Expect(out).To(ContainSubstring("enroll needs --ca-pin or --ca-file"))

		By("a pin that is not the gateway's CA: refused, and nothing saved")
		out, code = enroll("--ca-pin", strings.Repeat("0", 64))
		Expect(code).To(Equal(1))
		Expect(out).To(ContainSubstring("does not contain the pinned CA"))
		Expect(devices()).To(BeEmpty())
		_, err := os.Stat(filepath.Join(stateDir, "cert.pem"))
		Expect(os.IsNotExist(err)).To(BeTrue(), "no certificate after a refused enrollment: %v", err)

		By("the payload's pin: enrolled, and the process exits")
		out, code = enroll("--ca-pin", pin[1])
		Expect(code).To(Equal(0), out)
		m := regexp.MustCompile(`Enrolled as ` + ns + `/(\S+); start the service`).FindStringSubmatch(out)
		Expect(m).To(HaveLen(2), out)
		name := m[1]
		Expect(devices()).To(HaveLen(1))
		Expect(filepath.Join(stateDir, "cert.pem")).To(BeAnExistingFile())

		By("enroll again: already enrolled, no second Device")
		out, code = enroll("--ca-pin", pin[1])
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring("Already enrolled as " + ns + "/" + name))
		Expect(devices()).To(HaveLen(1))

		By("the service, with neither gateway nor token, runs from the saved state and takes a command")
		service := exec.Command(agentBin, "--state-dir", stateDir, "--platform", "simulated", "--heartbeat", "1h", "--zap-devel")
		service.Env = append(os.Environ(), "KUBEMDM_TOKEN=")
		start("agent-service", service)
		Eventually(func(g Gomega) {
			d := &mdmv1alpha1.Device{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected)).To(BeTrue())
		}).Should(Succeed())
		a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lock-box"},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock, Devices: []string{name}}}
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(mdmv1alpha1.ActionSucceeded))
		}).Should(Succeed())
	})
})
