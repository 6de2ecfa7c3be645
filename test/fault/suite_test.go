// Package fault injects the faults a fleet meets in production into a
// running system and checks that no command is lost, run twice or left
// without a single end: kill -9 of the manager in the middle of an action,
// a kill -9 and restart of the kube-apiserver with etcd kept, one of two
// gateway replicas killed, an agent killed between executing and reporting,
// and streams cut mid-command.
//
// The manager and, for the agent fault, the agent run as child processes
// built from this checkout; the fleet's other agents run in the test
// process, each with its own key, certificate and mTLS connection, through
// a balancer standing for the Service in front of the gateway replicas.
// FAULT_DEVICES sets the fleet size (100 by default; make fault runs 1,000).
package fault

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

const managerNamespace = "kubemdm-system"

var (
	controlPlane *envtest.Environment
	cfg          *rest.Config
	k8sClient    client.Client
	scheme       = k8sruntime.NewScheme()
	// kubeconfig lets the child processes reach the control plane.
	kubeconfig string
	managerBin string
	agentBin   string
	// fleetSize is the number of devices of a fleet.
	fleetSize = 100
)

func TestFault(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Fault Injection Suite")
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		Skip("KUBEBUILDER_ASSETS is not set; run make test")
	}
	if n, err := strconv.Atoi(os.Getenv("FAULT_DEVICES")); err == nil && n > 0 {
		fleetSize = n
	}
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(mdmv1alpha1.AddToScheme(scheme)).To(Succeed())

	bin := GinkgoT().TempDir()
	managerBin, agentBin = filepath.Join(bin, "manager"), filepath.Join(bin, "kubemdm-agent")
	for out, pkg := range map[string]string{managerBin: "./cmd/manager", agentBin: "./cmd/kubemdm-agent"} {
		build := exec.Command("go", "build", "-o", out, pkg)
		build.Dir = repoRoot()
		output, err := build.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "building %s: %s", pkg, output)
	}

	controlPlane = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = controlPlane.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	Expect(k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: managerNamespace}})).To(Succeed())

	admin, err := controlPlane.AddUser(envtest.User{Name: "fault-admin", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	config, err := admin.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = filepath.Join(bin, "kubeconfig")
	Expect(os.WriteFile(kubeconfig, config, 0o600)).To(Succeed())
	GinkgoWriter.Println(fmt.Sprintf("Fleet size %d (FAULT_DEVICES)", fleetSize))
})

var _ = AfterSuite(func() {
	stopRestartedAPIServer()
	if controlPlane != nil {
		// An apiserver this suite restarted is not the one envtest started;
		// stopping it reports that, and etcd is stopped all the same.
		_ = controlPlane.Stop()
	}
})
