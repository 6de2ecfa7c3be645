// Command manager runs the kubemdm controllers, admission webhooks and device
// gateway. Flags turn each part on or off, so the gateway can run as extra
// replicas while one leader-elected replica runs the controllers.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/controllers"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(mdmv1alpha1.AddToScheme(scheme))
}

type options struct {
	metricsAddr       string
	metricsSecure     bool
	probeAddr         string
	leaderElect       bool
	leaderElectionNS  string
	enableControllers bool
	enableWebhooks    bool
	enableGateway     bool
	webhookPort       int
	webhookCertDir    string
	enrollmentHost    string
	enableHTTP2       bool
}

func main() {
	var o options
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", `Address the metrics endpoint binds to; "0" disables it.`)
	flag.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, authenticated and authorized by the apiserver.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that one replica runs the controllers.")
	flag.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease; defaults to the pod's namespace.")
	flag.BoolVar(&o.enableControllers, "enable-controllers", true, "Run the Device, EnrollmentToken and DeviceAction controllers.")
	flag.BoolVar(&o.enableWebhooks, "enable-webhooks", false, "Serve the admission webhooks.")
	flag.BoolVar(&o.enableGateway, "enable-gateway", false, "Serve the device-facing gateway.")
	flag.IntVar(&o.webhookPort, "webhook-port", 9443, "Port the admission webhook server listens on.")
	flag.StringVar(&o.webhookCertDir, "webhook-cert-dir", "", "Directory with tls.crt and tls.key for the webhook server.")
	flag.StringVar(&o.enrollmentHost, "enrollment-host", "", "Gateway address (host:port) that enrollment payloads and QR codes send devices to.")
	flag.BoolVar(&o.enableHTTP2, "enable-http2", false, "Allow HTTP/2 on the metrics and webhook servers (off by default against HTTP/2 rapid-reset attacks).")
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(o); err != nil {
		ctrl.Log.Error(err, "Manager stopped")
		os.Exit(1)
	}
}

func run(o options) error {
	log := ctrl.Log.WithName("setup")
	if o.enableWebhooks || o.enableGateway {
		// These parts arrive with their own changes; refusing the flag is
		// better than starting without the part that was asked for.
		return fmt.Errorf("--enable-webhooks and --enable-gateway are not available in this version")
	}

	var tlsOpts []func(*tls.Config)
	if !o.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: o.metricsSecure, TLSOpts: tlsOpts}
	if o.metricsSecure {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	managedBy := labels.SelectorFromSet(labels.Set{mdmv1alpha1.LabelManagedBy: mdmv1alpha1.ManagedByValue})
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "manager.mdm.kubemdm.io",
		LeaderElectionNamespace: o.leaderElectionNS,
		WebhookServer:           webhook.NewServer(webhook.Options{Port: o.webhookPort, CertDir: o.webhookCertDir, TLSOpts: tlsOpts}),
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// Only kubemdm's own Secrets are cached; others are read directly.
			&corev1.Secret{}: {Label: managedBy},
		}},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	if o.enableControllers {
		if err := (&controllers.EnrollmentTokenReconciler{
			Client:         mgr.GetClient(),
			APIReader:      mgr.GetAPIReader(),
			Recorder:       mgr.GetEventRecorder("enrollmenttoken-controller"),
			EnrollmentHost: o.enrollmentHost,
		}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up EnrollmentToken controller: %w", err)
		}
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("adding readiness check: %w", err)
	}

	log.Info("Starting manager", "controllers", o.enableControllers, "enrollmentHost", o.enrollmentHost)
	return mgr.Start(ctrl.SetupSignalHandler())
}
