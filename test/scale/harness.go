package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/loopback"
	"github.com/kubemdm/kubemdm/internal/testenv"
)

// managerNamespace holds the manager's own Secrets and Leases.
const managerNamespace = "kubemdm-system"

// Harness is one run: a control plane, the manager as a child process, and
// a client whose writes are counted, so that they can be told from the
// manager's.
type Harness struct {
	profile Profile
	log     io.Writer
	env     *envtest.Environment
	cfg     *rest.Config
	scheme  *k8sruntime.Scheme
	// client is the harness's own, unthrottled; its writes are counted in own.
	client client.Client
	own    *writeCounter
	// api reads the apiserver's request counters.
	api *apiMetrics

	dir         string
	kubeconfig  string
	managerBin  string
	manager     *testenv.Process
	managerRuns int
	gatewayAddr string
	// metricsAddr serves the manager's metrics, over plain HTTP.
	metricsAddr string
	// beforeFleet is this process's live memory before the fleet existed.
	beforeFleet int64
	// agentLog takes the simulated agents' logs (SCALE_AGENT_LOG).
	agentLog      logr.Logger
	closeAgentLog func()
}

// start builds the manager, starts a control plane and the manager, and
// waits until the gateway serves.
func start(ctx context.Context, p Profile, log io.Writer) (*Harness, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set; run make scale")
	}
	h := &Harness{profile: p, log: log, scheme: k8sruntime.NewScheme(), dir: p.Dir}
	if err := clientgoscheme.AddToScheme(h.scheme); err != nil {
		return nil, err
	}
	if err := mdmv1alpha1.AddToScheme(h.scheme); err != nil {
		return nil, err
	}
	var err error
	if h.agentLog, h.closeAgentLog, err = agentLogger(os.Getenv("SCALE_AGENT_LOG")); err != nil {
		return nil, err
	}
	h.managerBin = filepath.Join(h.dir, "manager")
	build := exec.CommandContext(ctx, "go", "build", "-o", h.managerBin, "./cmd/manager")
	build.Dir = repoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the manager: %w: %s", err, out)
	}

	ctrllog.SetLogger(logr.Discard())
	shadow, err := shadowDeviceCRD()
	if err != nil {
		return nil, err
	}
	h.env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot(), "config", "crd", "bases")},
		CRDs:                  []*apiextensionsv1.CustomResourceDefinition{shadow},
		ErrorIfCRDPathMissing: true,
	}
	// To look inside the apiserver, e.g. "contention-profiling=true" for
	// its /debug/pprof/block and mutex; such a run measures that setting.
	for _, arg := range strings.Fields(os.Getenv("SCALE_APISERVER_ARGS")) {
		name, value, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		h.env.ControlPlane.GetAPIServer().Configure().Append(name, value)
	}
	cfg, err := h.env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	h.cfg = rest.CopyConfig(cfg)
	// The harness measures the apiserver, not client-side throttling.
	h.cfg.QPS, h.cfg.Burst = -1, 0
	raw, err := client.New(h.cfg, client.Options{Scheme: h.scheme})
	if err != nil {
		return nil, err
	}
	h.own = newWriteCounter(raw)
	h.client = h.own
	if h.api, err = newAPIMetrics(h.cfg); err != nil {
		return nil, err
	}
	if err := h.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: managerNamespace}}); err != nil {
		return nil, err
	}
	// The manager connects as a user of its own, through a kubeconfig, as
	// it would in a cluster.
	user, err := h.env.AddUser(envtest.User{Name: "kubemdm-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	h.kubeconfig = filepath.Join(h.dir, "kubeconfig")
	if err := os.WriteFile(h.kubeconfig, kc, 0o600); err != nil {
		return nil, err
	}
	if h.gatewayAddr, err = loopback.FreeAddr(); err != nil {
		return nil, err
	}
	if h.metricsAddr, err = loopback.FreeAddr(); err != nil {
		return nil, err
	}
	return h, h.startManager(ctx)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// startManager runs the manager and waits until its gateway accepts
// connections.
func (h *Harness) startManager(ctx context.Context) error {
	if err := h.launchManager(); err != nil {
		return err
	}
	return h.awaitManager(ctx)
}

// launchManager runs the manager at its default flags, but for those that
// place it on this machine.
func (h *Harness) launchManager() error {
	h.managerRuns++
	cmd := exec.Command(h.managerBin,
		"--kubeconfig", h.kubeconfig,
		"--namespace", managerNamespace,
		"--enable-webhooks=false",
		"--metrics-bind-address", h.metricsAddr, "--metrics-secure=false",
		"--health-probe-bind-address", "0",
		"--gateway-bind-address", h.gatewayAddr,
		"--enrollment-host", h.gatewayAddr,
		"--gateway-replica", "scale",
	)
	// A harness stopped by its test timeout leaves no manager behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if addr := os.Getenv("SCALE_PPROF"); addr != "" {
		// For a look inside: go tool pprof http://ADDR/debug/pprof/heap
		cmd.Args = append(cmd.Args, "--pprof-bind-address", addr)
	}
	// To try a flag's effect, e.g. "--gateway-max-concurrent-reports=64";
	// a run with it measures that setting, not the defaults.
	cmd.Args = append(cmd.Args, strings.Fields(os.Getenv("SCALE_MANAGER_ARGS"))...)
	p, err := testenv.Launch(fmt.Sprintf("manager-%d", h.managerRuns), cmd, h.dir)
	if err != nil {
		return err
	}
	h.manager = p
	return nil
}

// awaitManager waits until the manager's gateway accepts connections.
func (h *Harness) awaitManager(ctx context.Context) error {
	p := h.manager
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-p.Exited:
			return fmt.Errorf("the manager exited:\n%s", p.Tail(4000))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if testenv.Serving(h.gatewayAddr) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager's gateway did not listen within 2m:\n%s", p.Tail(4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills the manager and stops the control plane.
func (h *Harness) stop() {
	if h.closeAgentLog != nil {
		h.closeAgentLog()
	}
	if h.manager != nil {
		h.manager.Kill()
	}
	keepManagerLogs(h.dir)
	if h.env != nil {
		_ = h.env.Stop()
	}
}

func (h *Harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}
