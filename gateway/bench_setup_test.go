package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/agent"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/testenv"
)

// benchDevice is a control plane with a manager and gateway, and one
// simulated device enrolled through a perpetual token in its own namespace.
type benchDevice struct {
	env    *testenv.Env
	ns     string
	name   string
	agent  *agent.Agent
	device *agent.Simulated
	// token is the perpetual token's value, for more devices to enroll.
	token string
}

// startBenchDevice sets up a benchmark's world; the control plane stops when
// the benchmark ends. Without KUBEBUILDER_ASSETS the benchmark is skipped.
func startBenchDevice(b *testing.B, opts testenv.Options, serial string) *benchDevice {
	e, err := testenv.Start(opts)
	if err != nil {
		b.Skip(err)
	}
	b.Cleanup(func() { _ = e.Stop() })
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		b.Fatal(err)
	}
	token := &mdmv1alpha1.EnrollmentToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "bench"},
		Spec: mdmv1alpha1.EnrollmentTokenSpec{Platform: mdmv1alpha1.PlatformLinux, Perpetual: true}}
	if err := e.Client.Create(ctx, token); err != nil {
		b.Fatal(err)
	}
	secret := &corev1.Secret{}
	waitFor(b, "the token to be issued", func() bool {
		return e.Client.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "bench-token"}, secret) == nil
	})
	state, err := agent.LoadState(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	dev := &agent.Simulated{Serial: serial, PlatformName: "Linux"}
	a := agent.New(agent.Options{Gateway: e.GatewayAddr, Token: string(secret.Data[mdmv1alpha1.TokenSecretKey]),
		Trust: agent.Trust{CABundle: e.CABundle}, Heartbeat: time.Hour}, state, dev, logr.Discard())
	if err := a.Enroll(ctx); err != nil {
		b.Fatal(err)
	}
	return &benchDevice{env: e, ns: ns.Name, name: strings.ToLower(serial), agent: a, device: dev,
		token: string(secret.Data[mdmv1alpha1.TokenSecretKey])}
}

// run runs the device's agent until the benchmark ends and waits until the
// gateway has seen it.
func (d *benchDevice) run(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go func() { _ = d.agent.Run(ctx) }()
	waitFor(b, "the agent to connect", func() bool {
		dev := &mdmv1alpha1.Device{}
		return d.env.Client.Get(ctx, client.ObjectKey{Namespace: d.ns, Name: d.name}, dev) == nil && dev.Status.LastSeen != nil
	})
}

func waitFor(b *testing.B, what string, done func() bool) {
	for deadline := time.Now().Add(30 * time.Second); !done(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
	}
}
