// Command manager runs the kubemdm controllers, admission webhooks and device
// gateway. Flags turn each part on or off, so the gateway can run as extra
// replicas while one leader-elected replica runs the controllers.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/controllers"
	"github.com/kubemdm/kubemdm/controllers/compliance"
	"github.com/kubemdm/kubemdm/gateway"
	"github.com/kubemdm/kubemdm/internal/configset"
	"github.com/kubemdm/kubemdm/internal/pki"
	mdmwebhook "github.com/kubemdm/kubemdm/webhook"
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
	pprofAddr         string
	concurrency       int
	leaderElect       bool
	leaderElectionNS  string
	enableControllers bool
	enableWebhooks    bool
	enableGateway     bool
	webhookPort       int
	webhookCertDir    string
	enrollmentHost    string
	enableHTTP2       bool

	namespace           string
	gatewayAddr         string
	deviceCASecret      string
	gatewayCASecret     string
	ticketSecret        string
	gatewayTLSSecret    string
	gatewayTLSHosts     string
	certificateLifetime time.Duration
	statusFlushInterval time.Duration
	deletionTimeout     time.Duration
	seenWindow          time.Duration
	applyGrace          time.Duration
	gatewayReplica      string
	handoverGrace       time.Duration
	leaseDuration       time.Duration
	maxEnrollments      int
	maxReports          int
	kubeAPIQPS          float64
	kubeAPIBurst        int
}

func main() {
	var o options
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", `Address the metrics endpoint binds to; "0" disables it.`)
	flag.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, authenticated and authorized by the apiserver.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.IntVar(&o.concurrency, "max-concurrent-reconciles", 4, "How many objects of one kind each controller reconciles at once; a fleet enrolling at once waits on the Device controller's writes. DeviceActions that share a device take turns whatever this says.")
	flag.StringVar(&o.pprofAddr, "pprof-bind-address", "0", `Address the Go profiler (net/http/pprof) binds to, for measuring memory and CPU; "0" disables it.`)
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that one replica runs the controllers.")
	flag.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease; defaults to the pod's namespace.")
	flag.BoolVar(&o.enableControllers, "enable-controllers", true, "Run the Device, EnrollmentToken and DeviceAction controllers.")
	flag.BoolVar(&o.enableWebhooks, "enable-webhooks", true, "Serve the admission webhooks (RBAC verbs for destructive actions, eligibility warnings, unenrollment dates).")
	flag.BoolVar(&o.enableGateway, "enable-gateway", true, "Serve the device-facing gateway on every replica.")
	flag.IntVar(&o.webhookPort, "webhook-port", 9443, "Port the admission webhook server listens on.")
	flag.StringVar(&o.webhookCertDir, "webhook-cert-dir", "", "Directory with tls.crt and tls.key for the webhook server.")
	flag.StringVar(&o.enrollmentHost, "enrollment-host", "", "Gateway address (host:port) that enrollment payloads and QR codes send devices to.")
	flag.BoolVar(&o.enableHTTP2, "enable-http2", false, "Allow HTTP/2 on the metrics and webhook servers (off by default against HTTP/2 rapid-reset attacks).")
	flag.StringVar(&o.namespace, "namespace", envOr("POD_NAMESPACE", "kubemdm-system"), "Namespace of the manager's own Secrets (device CA, gateway CA, session tickets).")
	flag.StringVar(&o.gatewayAddr, "gateway-bind-address", ":7443", "Address the device gateway listens on.")
	flag.StringVar(&o.deviceCASecret, "device-ca-secret", "kubemdm-device-ca", "Secret holding the CA that signs device certificates; created on first start.")
	flag.StringVar(&o.ticketSecret, "gateway-session-ticket-secret", "kubemdm-gateway-session-tickets", "Secret holding what the gateway's TLS session tickets are derived from, so that agents resume their sessions across restarts and replicas; created on first start. Whoever reads it can pose as the gateway to a device resuming a session: guard it as the gateway's serving key. Empty: sessions resume with the same process only.")
	flag.StringVar(&o.gatewayCASecret, "gateway-ca-secret", "kubemdm-gateway-ca", "Secret holding the CA of the self-signed gateway certificate; created on first start.")
	flag.StringVar(&o.gatewayTLSSecret, "gateway-tls-secret", "", "kubernetes.io/tls Secret (with ca.crt, as cert-manager writes it) to serve the gateway with, instead of a self-signed certificate.")
	flag.StringVar(&o.gatewayTLSHosts, "gateway-tls-hosts", "localhost,127.0.0.1", "Comma-separated DNS names and IPs of the self-signed gateway certificate.")
	flag.DurationVar(&o.certificateLifetime, "device-certificate-lifetime", 30*24*time.Hour, "Lifetime of device identity certificates; agents renew them before expiry.")
	flag.DurationVar(&o.statusFlushInterval, "status-flush-interval", 5*time.Minute, "How often at most the lastSeen of an agent that polls without a stream is written to its status; a streaming agent's is written when its stream opens and closes.")
	flag.DurationVar(&o.deletionTimeout, "deletion-timeout", controllers.DefaultDeletionTimeout, "How long a deleted Device waits for its device to confirm the deletion policy before it is released anyway.")
	flag.StringVar(&o.gatewayReplica, "gateway-replica", envOr("POD_NAME", hostLabel()), "Name of this gateway replica, unique among the running ones; its Lease is kubemdm-gateway-<name> in --namespace.")
	flag.DurationVar(&o.handoverGrace, "gateway-handover-grace", gateway.DefaultHandoverGrace, "How long a device whose stream closed (or whose gateway replica stopped) has to reconnect before it is shown disconnected.")
	flag.DurationVar(&o.leaseDuration, "gateway-lease-duration", gateway.DefaultLeaseDuration, "How long a gateway replica's Lease holds without renewal; the other replicas then mark its devices disconnected.")
	flag.IntVar(&o.maxEnrollments, "gateway-max-concurrent-enrollments", gateway.DefaultMaxConcurrentEnrollments, "How many enrollments one gateway replica runs at once; during a storm the others wait their turn rather than flood the apiserver.")
	flag.IntVar(&o.maxReports, "gateway-max-concurrent-reports", gateway.DefaultMaxConcurrentReports, "How many agents' reports one gateway replica writes to their Devices at once; when a whole fleet reports, the others wait their turn rather than flood the apiserver.")
	flag.Float64Var(&o.kubeAPIQPS, "kube-api-qps", -1, "Requests per second the manager may send the apiserver, all its clients together; negative: no client-side limit (see the README).")
	flag.IntVar(&o.kubeAPIBurst, "kube-api-burst", 0, "Requests the manager may send at once above --kube-api-qps; 0: two seconds' worth.")
	flag.DurationVar(&o.seenWindow, "compliance-seen-window", compliance.DefaultSeenWindow, "A device whose agent was not seen for this long is NonCompliant.")
	flag.DurationVar(&o.applyGrace, "compliance-apply-grace", compliance.DefaultApplyGrace, "A device that has not applied a configuration revision this long after it became due is NonCompliant.")
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
	if o.maxEnrollments < 1 || o.maxReports < 1 {
		return fmt.Errorf("--gateway-max-concurrent-enrollments and --gateway-max-concurrent-reports must be at least 1, not %d and %d", o.maxEnrollments, o.maxReports)
	}
	if o.concurrency < 1 {
		return fmt.Errorf("--max-concurrent-reconciles must be at least 1, not %d", o.concurrency)
	}
	// The flags are checked before the kubeconfig is read, so that a bad
	// one is named whatever else is wrong.
	if err := limitClientRate(&rest.Config{}, o.kubeAPIQPS, o.kubeAPIBurst); err != nil {
		return err
	}
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("reading the kubeconfig: %w", err)
	}
	if err := limitClientRate(restConfig, o.kubeAPIQPS, o.kubeAPIBurst); err != nil {
		return err
	}

	// The gateway's port is bound first, before the caches sync: after a
	// restart of a replica with thousands of devices, their reconnects
	// queue in the kernel and complete the moment the gateway serves,
	// rather than being refused and backing off for up to half a minute.
	var gatewayListener net.Listener
	if o.enableGateway {
		var err error
		if gatewayListener, err = net.Listen("tcp", o.gatewayAddr); err != nil {
			return fmt.Errorf("gateway listening on %s: %w", o.gatewayAddr, err)
		}
		defer gatewayListener.Close()
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
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		Controller:              config.Controller{MaxConcurrentReconciles: o.concurrency},
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "manager.mdm.kubemdm.io",
		LeaderElectionNamespace: o.leaderElectionNS,
		WebhookServer:           webhook.NewServer(webhook.Options{Port: o.webhookPort, CertDir: o.webhookCertDir, TLSOpts: tlsOpts}),
		Cache: cache.Options{
			// Nothing reads managedFields from the cache (the DeviceAction
			// controller reads a Device's field owners from the apiserver):
			// at fleet size they are most of a cached Device.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				// Only kubemdm's own Secrets are cached; others are read directly.
				&corev1.Secret{}: {Label: managedBy},
			}},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	ctx := ctrl.SetupSignalHandler()
	// The gateway's certificate is needed by the gateway and, as the trust
	// anchor put into enrollment payloads, by the EnrollmentToken controller.
	serving, err := servingCertificate(ctx, mgr, o)
	if err != nil {
		return err
	}
	// The gateway renders configurations with the Secrets and ConfigMaps
	// labelled for devices; the Configuration controller hashes them.
	payloads, err := configset.NewPayloadCache(mgr)
	if err != nil {
		return err
	}
	// The gateway signs device certificates and enrollment records with
	// the device CA; the Device controller verifies the records with it.
	deviceCA, err := pki.EnsureCA(ctx, mgr.GetAPIReader(), mgr.GetClient(),
		types.NamespacedName{Namespace: o.namespace, Name: o.deviceCASecret}, "kubemdm device CA")
	if err != nil {
		return err
	}
	if o.enableGateway {
		if err := gateway.ValidateReplicaName(o.gatewayReplica); err != nil {
			return fmt.Errorf("%w (set --gateway-replica)", err)
		}
		var ticketSecret []byte
		if o.ticketSecret != "" {
			if ticketSecret, err = gateway.EnsureTicketSecret(ctx, mgr.GetAPIReader(), mgr.GetClient(),
				types.NamespacedName{Namespace: o.namespace, Name: o.ticketSecret}); err != nil {
				return err
			}
		}
		if _, err := gateway.Setup(ctx, mgr, deviceCA, gateway.Options{
			Payloads:                 payloads,
			BindAddress:              o.gatewayAddr,
			Listener:                 gatewayListener,
			CertificateLifetime:      o.certificateLifetime,
			StatusFlushInterval:      o.statusFlushInterval,
			Serving:                  serving,
			Replica:                  o.gatewayReplica,
			LeaseNamespace:           o.namespace,
			HandoverGrace:            o.handoverGrace,
			LeaseDuration:            o.leaseDuration,
			MaxConcurrentEnrollments: o.maxEnrollments,
			MaxConcurrentReports:     o.maxReports,
			TicketSecret:             ticketSecret,
		}); err != nil {
			return fmt.Errorf("setting up gateway: %w", err)
		}
	}
	if o.enableWebhooks {
		if err := mdmwebhook.Setup(mgr); err != nil {
			return fmt.Errorf("setting up webhooks: %w", err)
		}
	}
	if o.enableControllers {
		if err := (&controllers.EnrollmentTokenReconciler{
			Client:          mgr.GetClient(),
			APIReader:       mgr.GetAPIReader(),
			Recorder:        mgr.GetEventRecorder("enrollmenttoken-controller"),
			EnrollmentHost:  o.enrollmentHost,
			GatewayCABundle: serving.CABundle,
		}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up EnrollmentToken controller: %w", err)
		}
		if err := (&controllers.DeviceReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("device-controller"),
			DeletionTimeout: o.deletionTimeout, SeenWindow: o.seenWindow, ApplyGrace: o.applyGrace,
			DeviceCAKey: deviceCA.PublicKey()}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up Device controller: %w", err)
		}
		if err := (&controllers.ConfigurationReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
			Payloads: payloads}).SetupWithManager(ctx, mgr); err != nil {
			return fmt.Errorf("setting up Configuration controller: %w", err)
		}
		if err := (&controllers.DeviceActionReconciler{
			Client:    mgr.GetClient(),
			APIReader: mgr.GetAPIReader(),
			Recorder:  mgr.GetEventRecorder("deviceaction-controller"),
		}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up DeviceAction controller: %w", err)
		}
		if err := mgr.Add(&controllers.FleetMetrics{Cache: mgr.GetCache()}); err != nil {
			return fmt.Errorf("setting up fleet metrics: %w", err)
		}
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("adding readiness check: %w", err)
	}

	log.Info("Starting manager", "controllers", o.enableControllers, "webhooks", o.enableWebhooks, "gateway", o.enableGateway, "enrollmentHost", o.enrollmentHost)
	return mgr.Start(ctx)
}

// hostLabel is the first label of the host name, the replica name outside a
// pod.
func hostLabel() string {
	host, _ := os.Hostname()
	label, _, _ := strings.Cut(strings.ToLower(host), ".")
	return label
}

func servingCertificate(ctx context.Context, mgr ctrl.Manager, o options) (*gateway.ServingCertificate, error) {
	if o.gatewayTLSSecret != "" {
		return gateway.ServingFromSecret(ctx, mgr.GetAPIReader(), types.NamespacedName{Namespace: o.namespace, Name: o.gatewayTLSSecret})
	}
	return gateway.SelfSignedServing(ctx, mgr.GetAPIReader(), mgr.GetClient(),
		types.NamespacedName{Namespace: o.namespace, Name: o.gatewayCASecret}, strings.Split(o.gatewayTLSHosts, ","))
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}
