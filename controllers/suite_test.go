package controllers_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/controllers"
	"github.com/kubemdm/kubemdm/internal/testenv"
)

const enrollmentHost = "gateway.test.example:8443"

var (
	cfg       *rest.Config
	k8sClient client.Client
	testEnv   *envtest.Environment
	scheme    = runtime.NewScheme()
	// logs holds every line the controllers logged, so that tests can assert
	// what never appears in them.
	logs   = &syncBuffer{}
	cancel context.CancelFunc
	// deviceCAKey stands for the gateway's device CA, which signs the
	// enrollment records the Device controller takes.
	deviceCAKey = func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}()
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var logWriter = testenv.SetLogger(zapcore.InfoLevel)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers Suite")
}

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(15 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	logWriter.Set(io.MultiWriter(GinkgoWriter, logs))
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(mdmv1alpha1.AddToScheme(scheme)).To(Succeed())

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// As many workers as cmd/manager's default: actions that share a
		// device must take turns under it.
		Controller: config.Controller{MaxConcurrentReconciles: 4},
		// The same cache restriction as cmd/manager: only kubemdm's Secrets.
		Cache: cache.Options{
			// Nothing reads managedFields from the cache (the DeviceAction
			// controller reads a Device's field owners from the apiserver):
			// at fleet size they are most of a cached Device.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{mdmv1alpha1.LabelManagedBy: mdmv1alpha1.ManagedByValue})},
			}},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect((&controllers.EnrollmentTokenReconciler{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Recorder:       mgr.GetEventRecorder("enrollmenttoken-controller"),
		EnrollmentHost: enrollmentHost,
		// Short, so that the Wi-Fi spec need not wait the production 15s.
		WifiSecretRetry: 500 * time.Millisecond,
	}).SetupWithManager(mgr)).To(Succeed())

	// A short deletion timeout, so that the timeout spec need not wait an hour.
	Expect((&controllers.DeviceReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("device-controller"),
		DeletionTimeout: 3 * time.Second, DeviceCAKey: &deviceCAKey.PublicKey}).SetupWithManager(mgr)).To(Succeed())
	// Device status writes fail on demand (deviceStatusFaults), and a
	// deleted action waits only briefly for devices that hold its command.
	Expect((&controllers.DeviceActionReconciler{Client: faultyClient{mgr.GetClient()}, APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("deviceaction-controller"),
		CancelGrace: 2 * time.Second}).SetupWithManager(mgr)).To(Succeed())

	var ctx context.Context
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

// deviceStatusFaults makes the DeviceAction controller's next status writes
// to the named Devices fail, as when the apiserver is briefly away: a
// Device name maps to how many writes still fail.
var deviceStatusFaults = struct {
	sync.Mutex
	left map[string]int
}{left: map[string]int{}}

func failDeviceStatusWrites(device string, n int) {
	deviceStatusFaults.Lock()
	defer deviceStatusFaults.Unlock()
	deviceStatusFaults.left[device] = n
}

func deviceStatusFaultsLeft(device string) int {
	deviceStatusFaults.Lock()
	defer deviceStatusFaults.Unlock()
	return deviceStatusFaults.left[device]
}

type faultyClient struct{ client.Client }

func (c faultyClient) Status() client.SubResourceWriter { return faultyStatus{c.Client.Status()} }

type faultyStatus struct{ client.SubResourceWriter }

func (s faultyStatus) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	if named, ok := obj.(interface{ GetName() string }); ok {
		deviceStatusFaults.Lock()
		left := deviceStatusFaults.left[named.GetName()]
		if left > 0 {
			deviceStatusFaults.left[named.GetName()] = left - 1
		}
		deviceStatusFaults.Unlock()
		if left > 0 {
			return apierrors.NewServiceUnavailable("injected fault: the apiserver is away")
		}
	}
	return s.SubResourceWriter.Apply(ctx, obj, opts...)
}

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})
