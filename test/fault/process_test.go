package fault

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/loopback"
	"github.com/kubemdm/kubemdm/internal/testenv"
)

// Faster than the defaults, so that a killed replica's devices show
// disconnected within seconds.
const (
	handoverGrace = time.Second
	leaseDuration = 4 * time.Second
)

// start launches a process that is killed when the spec ends, and whose
// log is shown when it failed.
func start(name string, cmd *exec.Cmd) *testenv.Process {
	p := launch(name, cmd, GinkgoT().TempDir())
	DeferCleanup(func() {
		if CurrentSpecReport().Failed() {
			GinkgoWriter.Printf("--- end of %s's log ---\n%s\n", p.Name, p.Tail(8000))
		}
		p.Kill()
	})
	return p
}

func launch(name string, cmd *exec.Cmd, dir string) *testenv.Process {
	p, err := testenv.Launch(name, cmd, dir)
	Expect(err).NotTo(HaveOccurred())
	return p
}

// freeAddr is a loopback address nothing listens on.
func freeAddr() string {
	addr, err := loopback.FreeAddr()
	Expect(err).NotTo(HaveOccurred())
	return addr
}

// startManager runs the manager as replica name with its gateway on addr;
// controllers only when asked, as a gateway-only replica runs without.
func startManager(name, addr, enrollmentHost string, controllers bool, extraArgs ...string) *testenv.Process {
	cmd := exec.Command(managerBin,
		"--kubeconfig", kubeconfig,
		"--namespace", managerNamespace,
		"--enable-webhooks=false",
		"--enable-controllers="+map[bool]string{true: "true", false: "false"}[controllers],
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", "0",
		"--gateway-bind-address", addr,
		"--enrollment-host", enrollmentHost,
		"--gateway-replica", name,
		"--gateway-handover-grace", handoverGrace.String(),
		"--gateway-lease-duration", leaseDuration.String(),
		"--zap-devel",
	)
	// A flag given again overrides the one above.
	cmd.Args = append(cmd.Args, extraArgs...)
	p := start("manager-"+name, cmd)
	Eventually(func() error {
		select {
		case <-p.Exited:
			StopTrying("the manager exited; see its log").Now()
		default:
		}
		if !testenv.Serving(addr) {
			return fmt.Errorf("%s does not serve TLS yet", addr)
		}
		return nil
	}).Should(Succeed(), "manager %s serves its gateway", name)
	return p
}

// apiServer is the kube-apiserver this suite restarted, if it did: it
// outlives the spec, and the suite stops it.
var apiServer *testenv.Process

// killAndRestartAPIServer kills the kube-apiserver with SIGKILL and starts
// it again with the same flags, certificates and etcd, as a crashed static
// pod comes back.
func killAndRestartAPIServer(ctx context.Context, down time.Duration) {
	u, err := url.Parse(cfg.Host)
	Expect(err).NotTo(HaveOccurred())
	pid, args := findProcess("kube-apiserver", "--secure-port="+u.Port())
	Expect(pid).NotTo(BeZero(), "the kube-apiserver on port %s", u.Port())
	Expect(syscall.Kill(pid, syscall.SIGKILL)).To(Succeed())
	Eventually(func() bool { return syscall.Kill(pid, 0) != nil }).Should(BeTrue(), "the kube-apiserver is gone")
	time.Sleep(down)
	cmd := exec.Command(args[0], args[1:]...)
	apiServer = launch("kube-apiserver", cmd, os.TempDir())
	Eventually(func() error {
		return k8sClient.List(ctx, &mdmv1alpha1.DeviceList{})
	}).Should(Succeed(), "the restarted kube-apiserver serves")
}

func stopRestartedAPIServer() {
	if apiServer != nil {
		apiServer.Kill()
		_ = os.Remove(apiServer.Log)
	}
}

// findProcess finds the process whose command line names binary and
// contains arg, and returns its pid and arguments.
func findProcess(binary, arg string) (int, []string) {
	entries, err := os.ReadDir("/proc")
	Expect(err).NotTo(HaveOccurred())
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(raw, "\x00")), "\x00")
		if filepath.Base(args[0]) != binary {
			continue
		}
		for _, a := range args[1:] {
			if a == arg {
				pid, _ := strconv.Atoi(e.Name())
				return pid, args
			}
		}
	}
	return 0, nil
}
