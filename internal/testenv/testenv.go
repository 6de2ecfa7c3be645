// Package testenv runs what the suites test against: a real kube-apiserver
// and etcd (envtest, from KUBEBUILDER_ASSETS) with the CRDs, and a manager
// with the controllers and the gateway serving on loopback with real TLS.
package testenv

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/controllers"
	"github.com/kubemdm/kubemdm/gateway"
	"github.com/kubemdm/kubemdm/internal/configset"
	"github.com/kubemdm/kubemdm/internal/loopback"
	"github.com/kubemdm/kubemdm/internal/pki"
	mdmwebhook "github.com/kubemdm/kubemdm/webhook"
)

// Namespace holds the manager's own Secrets in tests.
const Namespace = "kubemdm-system"

// Env is a running control plane, manager and gateway.
type Env struct {
	// Environment is the envtest control plane, for adding users.
	Environment *envtest.Environment
	Config      *rest.Config
	Client      client.Client
	// Cache reads through the manager's informer cache, as the gateway does.
	Cache   client.Reader
	Scheme  *k8sruntime.Scheme
	Gateway *gateway.Server
	// GatewayAddr is host:port of the gateway.
	GatewayAddr string
	// CABundle verifies the gateway.
	CABundle []byte
	DeviceCA *pki.CA
	// MetricsAddr is host:port of the manager's metrics endpoint (plain
	// HTTP), with Options.Metrics.
	MetricsAddr string

	env    *envtest.Environment
	opts   Options
	cancel context.CancelFunc
	done   chan error
}

// Options tune the manager for a test.
type Options struct {
	StatusFlushInterval time.Duration
	// Wrap, when set, wraps the manager's client, for counting writes.
	Wrap func(client.Client) client.Client
	// DeviceActions runs the DeviceAction controller; suites that queue
	// commands by hand, as the gateway suite does, leave it off.
	DeviceActions bool
	// Webhooks installs and serves the admission webhooks.
	Webhooks bool
	// DeletionTimeout bounds how long a deleted Device waits for its device.
	DeletionTimeout time.Duration
	// ApplyGrace is how long a device may take to apply a configuration
	// revision before it is NonCompliant for it.
	ApplyGrace time.Duration
	// Metrics serves the manager's metrics on a free loopback port
	// (Env.MetricsAddr), the fleet gauges counted every 200ms.
	Metrics bool
	// HandoverGrace is the gateway's; 1s when zero, so that disconnects
	// show quickly.
	HandoverGrace time.Duration
}

// Replica is the name of the gateway replica Start runs.
const Replica = "testenv"

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Start starts everything and waits until the gateway listens.
func Start(o Options) (*Env, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set; run the tests with make test")
	}
	e := &Env{Scheme: k8sruntime.NewScheme(), opts: o}
	if err := clientgoscheme.AddToScheme(e.Scheme); err != nil {
		return nil, err
	}
	if err := mdmv1alpha1.AddToScheme(e.Scheme); err != nil {
		return nil, err
	}
	e.env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if o.Webhooks {
		e.env.WebhookInstallOptions = envtest.WebhookInstallOptions{Paths: []string{filepath.Join(repoRoot(), "config", "webhook")}}
	}
	e.Environment = e.env
	cfg, err := e.env.Start()
	if err != nil {
		return nil, err
	}
	e.Config = cfg
	if e.Client, err = client.New(cfg, client.Options{Scheme: e.Scheme}); err != nil {
		return nil, err
	}
	if err := e.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}); err != nil {
		return nil, err
	}
	// Not port 0: RestartManager binds the same address again, and a port
	// from the ephemeral range may be taken meanwhile by any connection.
	addr, err := loopback.FreeAddr()
	if err != nil {
		return nil, err
	}
	if err := e.startManager(addr); err != nil {
		return nil, err
	}
	return e, nil
}

// startManager starts a manager with the controllers, webhooks and gateway,
// the gateway listening on bind.
func (e *Env) startManager(bind string) error {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan error, 1)
	mgr, gw, err := e.newManager(ctx, bind, Replica, true)
	if err != nil {
		cancel()
		return err
	}
	e.Gateway = gw
	e.Cache = mgr.GetClient()
	done := e.done
	go func() { done <- mgr.Start(ctx) }()
	e.GatewayAddr = e.Gateway.Addr().String()
	return nil
}

// GatewayReplica is another gateway replica: a manager that runs only the
// gateway, as a second pod of the Deployment does while the first leads.
type GatewayReplica struct {
	Addr   string
	cancel context.CancelFunc
	done   chan error
}

// Stop stops the replica as a rollout would: gracefully.
func (r *GatewayReplica) Stop() {
	r.cancel()
	<-r.done
}

// StartGatewayReplica starts another gateway replica named name on a free
// loopback port.
func (e *Env) StartGatewayReplica(name string) (*GatewayReplica, error) {
	ctx, cancel := context.WithCancel(context.Background())
	mgr, gw, err := e.newManager(ctx, "127.0.0.1:0", name, false)
	if err != nil {
		cancel()
		return nil, err
	}
	r := &GatewayReplica{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- mgr.Start(ctx) }()
	r.Addr = gw.Addr().String()
	return r, nil
}

// newManager builds a manager whose gateway is replica name, listening on
// bind, with the controllers and webhooks when withControllers is set.
func (e *Env) newManager(ctx context.Context, bind, replica string, withControllers bool) (ctrl.Manager, *gateway.Server, error) {
	o := e.opts
	wh := e.env.WebhookInstallOptions
	webhookServer := webhook.NewServer(webhook.Options{Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir})
	if !withControllers {
		webhookServer = nil
	}
	metricsBind := "0"
	if e.opts.Metrics && withControllers {
		if e.MetricsAddr == "" {
			addr, err := loopback.FreeAddr()
			if err != nil {
				return nil, nil, err
			}
			e.MetricsAddr = addr
		}
		metricsBind = e.MetricsAddr
	}
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme:                 e.Scheme,
		WebhookServer:          webhookServer,
		Metrics:                metricsserver.Options{BindAddress: metricsBind},
		HealthProbeBindAddress: "0",
		// A restarted manager registers the same controllers again.
		Controller: config.Controller{SkipNameValidation: ptr.To(true), MaxConcurrentReconciles: 4},
		Cache: cache.Options{
			// Nothing reads managedFields from the cache (the DeviceAction
			// controller reads a Device's field owners from the apiserver):
			// at fleet size they are most of a cached Device.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{mdmv1alpha1.LabelManagedBy: mdmv1alpha1.ManagedByValue})},
			}},
		NewClient: func(config *rest.Config, options client.Options) (client.Client, error) {
			c, err := client.New(config, options)
			if err != nil || o.Wrap == nil {
				return c, err
			}
			return o.Wrap(c), nil
		},
	})
	if err != nil {
		return nil, nil, err
	}
	serving, err := gateway.SelfSignedServing(ctx, mgr.GetAPIReader(), mgr.GetClient(),
		types.NamespacedName{Namespace: Namespace, Name: "gateway-ca"}, []string{"localhost", "127.0.0.1"})
	if err != nil {
		return nil, nil, err
	}
	e.CABundle = serving.CABundle()
	if e.DeviceCA, err = pki.EnsureCA(ctx, mgr.GetAPIReader(), mgr.GetClient(),
		types.NamespacedName{Namespace: Namespace, Name: "device-ca"}, "test device CA"); err != nil {
		return nil, nil, err
	}
	flush := o.StatusFlushInterval
	if flush == 0 {
		flush = 5 * time.Minute
	}
	payloads, err := configset.NewPayloadCache(mgr)
	if err != nil {
		return nil, nil, err
	}
	gw, err := gateway.Setup(ctx, mgr, e.DeviceCA, gateway.Options{
		Payloads:    payloads,
		BindAddress: bind, CertificateLifetime: time.Hour, StatusFlushInterval: flush, Serving: serving,
		Replica: replica, LeaseNamespace: Namespace, HandoverGrace: cmp.Or(o.HandoverGrace, time.Second),
	})
	if err != nil {
		return nil, nil, err
	}
	if !withControllers {
		return mgr, gw, nil
	}
	if err := (&controllers.EnrollmentTokenReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("enrollmenttoken-controller"),
		EnrollmentHost: "127.0.0.1", GatewayCABundle: serving.CABundle, WifiSecretRetry: 500 * time.Millisecond,
	}).SetupWithManager(mgr); err != nil {
		return nil, nil, err
	}
	if err := (&controllers.DeviceReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("device-controller"),
		DeletionTimeout: o.DeletionTimeout, ApplyGrace: o.ApplyGrace, DeviceCAKey: e.DeviceCA.PublicKey()}).SetupWithManager(mgr); err != nil {
		return nil, nil, err
	}
	if err := (&controllers.ConfigurationReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Payloads: payloads}).SetupWithManager(ctx, mgr); err != nil {
		return nil, nil, err
	}
	if o.Metrics {
		if err := mgr.Add(&controllers.FleetMetrics{Cache: mgr.GetCache(), Interval: 200 * time.Millisecond}); err != nil {
			return nil, nil, err
		}
	}
	if o.Webhooks {
		if err := mdmwebhook.Setup(mgr); err != nil {
			return nil, nil, err
		}
	}
	if o.DeviceActions {
		if err := (&controllers.DeviceActionReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("deviceaction-controller")}).SetupWithManager(mgr); err != nil {
			return nil, nil, err
		}
	}
	return mgr, gw, nil
}

// RestartManager stops the manager, as a crash or a rollout would, and
// starts a new one whose gateway listens on the same address. The control
// plane keeps running.
func (e *Env) RestartManager() error {
	e.stopManager()
	return e.startManager(e.GatewayAddr)
}

func (e *Env) stopManager() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	select {
	case <-e.done:
	case <-time.After(30 * time.Second):
	}
	e.cancel = nil
}

// Stop stops the manager and the control plane.
func (e *Env) Stop() error {
	e.stopManager()
	return e.env.Stop()
}
