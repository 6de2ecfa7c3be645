// Command kubemdm-dev runs the whole system on one machine for `make dev`: a
// local control plane (kube-apiserver and etcd built by hack/envtest.sh) with
// the CRDs installed, the manager as a child process, and a demo
// EnrollmentToken. It writes a kubeconfig and prints the line to use it.
// Ctrl-C stops everything.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func main() {
	stateDir := flag.String("state-dir", ".dev", "Directory for the kubeconfig and logs.")
	manager := flag.String("manager", "bin/manager", "Path of the manager binary.")
	agentBin := flag.String("agent", "bin/kubemdm-agent", "Path of the agent binary.")
	enrollmentHost := flag.String("gateway", "127.0.0.1:7443", "Address the gateway serves on and enrollment payloads name (make dev GATEWAY_ADDR=...).")
	probeAddr := flag.String("probe-address", "127.0.0.1:18081", "Address of the manager's health probes (make dev PROBE_ADDR=...).")
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.Level(zapcore.WarnLevel)))

	if err := run(*stateDir, *manager, *agentBin, *enrollmentHost, *probeAddr); err != nil {
		fmt.Fprintln(os.Stderr, "kubemdm-dev:", err)
		os.Exit(1)
	}
}

func run(stateDir, managerBin, agentBin, enrollmentHost, probeAddr string) error {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set; run `make dev`, which builds the control plane first")
	}
	// A taken port would only show as a manager that never comes up: say so
	// before starting anything.
	if err := portsFree(map[string]string{"GATEWAY_ADDR": enrollmentHost, "PROBE_ADDR": probeAddr}); err != nil {
		return err
	}
	stateDir, err := filepath.Abs(stateDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Println("Starting the local control plane (kube-apiserver, etcd)")
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		// The webhook configurations point at the manager on localhost,
		// with a serving certificate envtest generates.
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join("config", "webhook")}},
	}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() {
		fmt.Println("Stopping the local control plane")
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}()

	admin, err := env.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		return fmt.Errorf("adding the admin user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	kubeconfigPath := filepath.Join(stateDir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return err
	}

	// A fresh machine has no kubectl: offer the one built with the control plane.
	binDir := filepath.Join(stateDir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(binDir, "kubectl"))
	if err := os.Symlink(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), filepath.Join(binDir, "kubectl")); err != nil {
		return fmt.Errorf("linking kubectl: %w", err)
	}

	logPath := filepath.Join(stateDir, "manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	c, err := newClient(admin.Config())
	if err != nil {
		return err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: managerNamespace}}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", managerNamespace, err)
	}
	if err := installPeopleRoles(ctx, c); err != nil {
		return err
	}
	cmd := exec.Command(managerBin,
		"--kubeconfig", kubeconfigPath,
		"--namespace", managerNamespace,
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", probeAddr,
		"--gateway-bind-address", enrollmentHost,
		"--enrollment-host", enrollmentHost,
		"--status-flush-interval", "30s",
		"--gateway-replica", "dev",
		"--webhook-port", strconv.Itoa(env.WebhookInstallOptions.LocalServingPort),
		"--webhook-cert-dir", env.WebhookInstallOptions.LocalServingCertDir,
		"--zap-devel",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the manager: %w", err)
	}
	// exited closes when the manager stops; exitErr is then its status.
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()

	// Every wait below ends at once when the manager exits, with its own
	// last words rather than a timeout.
	waitCtx, cancelWait := context.WithCancelCause(ctx)
	defer cancelWait(nil)
	go func() {
		select {
		case <-exited:
			cancelWait(managerExited(logPath, exitErr))
		case <-waitCtx.Done():
		}
	}()
	token, err := createDemo(waitCtx, c)
	if err != nil {
		return cmp.Or(context.Cause(waitCtx), err)
	}
	agents, err := startAgents(waitCtx, c, token, agentBin, enrollmentHost, stateDir)
	if err != nil {
		return cmp.Or(context.Cause(waitCtx), err)
	}
	defer func() {
		_ = agents.Process.Signal(syscall.SIGTERM)
		_ = agents.Wait()
	}()

	fmt.Printf(`
kubemdm is running. In another shell:

  export KUBECONFIG=%s PATH=%s:$PATH
  kubectl get enrollmenttokens,devices,deviceactions
  kubectl apply -f config/samples/

The manager logs to %s, the simulated devices to %s.
Press Ctrl-C to stop.
`, kubeconfigPath, binDir, logPath, filepath.Join(stateDir, "agents.log"))

	select {
	case <-ctx.Done():
		fmt.Println("\nShutting down")
		return nil
	case <-exited:
		return managerExited(logPath, exitErr)
	}
}

// installPeopleRoles creates kubemdm-viewer, kubemdm-operator and
// kubemdm-admin from config/rbac/people, so the README's RBAC example works
// under make dev.
func installPeopleRoles(ctx context.Context, c client.Client) error {
	raw, err := os.ReadFile(filepath.Join("config", "rbac", "people", "kubemdm_roles.yaml"))
	if err != nil {
		return fmt.Errorf("reading the people roles: %w", err)
	}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		role := &rbacv1.ClusterRole{}
		if err := yaml.Unmarshal([]byte(doc), role); err != nil {
			return fmt.Errorf("decoding the people roles: %w", err)
		}
		if err := c.Create(ctx, role); client.IgnoreAlreadyExists(err) != nil {
			return fmt.Errorf("creating ClusterRole %s: %w", role.Name, err)
		}
	}
	return nil
}

// portsFree fails when an address make dev serves on is taken, naming the
// variable that moves it.
func portsFree(addrs map[string]string) error {
	for variable, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s is taken (%w); stop what listens there or move it, e.g. make dev %s=127.0.0.1:<free port>",
				addr, err, variable)
		}
		_ = ln.Close()
	}
	return nil
}

// managerExited is the error for a manager that stopped: its exit status
// and the last lines it logged, which say why.
func managerExited(logPath string, err error) error {
	raw, _ := os.ReadFile(logPath)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return fmt.Errorf("the manager exited (%v); the end of %s:\n%s", err, logPath, strings.Join(lines, "\n"))
}

const managerNamespace = "kubemdm-system"

func newClient(cfg *rest.Config) (client.Client, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := mdmv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// createDemo creates the demo EnrollmentToken and waits for the manager to
// issue it, which also proves the manager is up.
func createDemo(ctx context.Context, c client.Client) (*mdmv1alpha1.EnrollmentToken, error) {
	token := &mdmv1alpha1.EnrollmentToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "demo"},
		Spec: mdmv1alpha1.EnrollmentTokenSpec{
			Platform:       mdmv1alpha1.PlatformLinux,
			Perpetual:      true,
			TTL:            &metav1.Duration{Duration: 720 * time.Hour},
			DisplayName:    "make dev demo fleet",
			DeviceTemplate: &mdmv1alpha1.DeviceTemplate{Labels: map[string]string{"fleet": "demo"}},
		},
	}
	if err := c.Create(ctx, token); err != nil {
		return nil, fmt.Errorf("creating the demo EnrollmentToken: %w", err)
	}
	fmt.Println("Waiting for the manager to issue the demo EnrollmentToken")
	err := waitFor(ctx, 60*time.Second, func() bool {
		return c.Get(ctx, client.ObjectKeyFromObject(token), token) == nil && token.Status.Phase == mdmv1alpha1.TokenPending
	})
	if err != nil {
		return nil, fmt.Errorf("the manager did not issue the demo EnrollmentToken: %w", err)
	}
	return token, nil
}

// startAgents runs three simulated devices in one agent process, enrolled
// with the demo token the way a device would be: the token value and the
// gateway's CA from the token's Secret.
func startAgents(ctx context.Context, c client.Client, token *mdmv1alpha1.EnrollmentToken, agentBin, gateway, stateDir string) (*exec.Cmd, error) {
	secret := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: token.Namespace, Name: token.Status.SecretRef.Name}, secret); err != nil {
		return nil, err
	}
	caPath := filepath.Join(stateDir, "gateway-ca.crt")
	if err := os.WriteFile(caPath, secret.Data[mdmv1alpha1.TokenSecretCAKey], 0o600); err != nil {
		return nil, err
	}
	agentDir := filepath.Join(stateDir, "agents")
	_ = os.RemoveAll(agentDir) // a fresh control plane knows none of the old identities
	logFile, err := os.Create(filepath.Join(stateDir, "agents.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(agentBin, "--gateway", gateway, "--ca-file", caPath, "--state-dir", agentDir,
		"--simulate", "3", "--simulate-platform", "Linux", "--simulate-prefix", "sim-", "--heartbeat", "20s")
	cmd.Env = append(os.Environ(), "KUBEMDM_TOKEN="+string(secret.Data[mdmv1alpha1.TokenSecretKey]))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the simulated devices: %w", err)
	}
	fmt.Println("Enrolling three simulated devices")
	err = waitFor(ctx, 60*time.Second, func() bool {
		list := &mdmv1alpha1.DeviceList{}
		if c.List(ctx, list, client.InNamespace(token.Namespace)) != nil {
			return false
		}
		connected := 0
		for _, d := range list.Items {
			if meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected) {
				connected++
			}
		}
		return connected >= 3
	})
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("the simulated devices did not connect (see %s): %w", logFile.Name(), err)
	}
	return cmd, nil
}

func waitFor(ctx context.Context, timeout time.Duration, done func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}
