package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/agent"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/gateway"
	"github.com/kubemdm/kubemdm/internal/enrollment"
	"github.com/kubemdm/kubemdm/internal/testenv"
)

// logBuffer keeps what was logged; zap writes from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var (
	suiteLog logBuffer
	// managerWrites counts the manager's (controllers' and gateway's)
	// requests that write to the apiserver.
	managerWrites atomic.Int64
	env           *testenv.Env
	k8sClient     client.Client
)

var logWriter = testenv.SetLogger(zapcore.Level(-3))

func TestGateway(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Gateway Suite")
}

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(15 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	// Every log line of the manager and the agents, to V(3) (kubemdm logs
	// at V(1) at most; beyond are client-go's request traces),
	// also goes to suiteLog, so that a test can say what never appears in
	// a log.
	logWriter.Set(io.MultiWriter(GinkgoWriter, &suiteLog))
	var err error
	env, err = testenv.Start(testenv.Options{Wrap: func(c client.Client) client.Client { return writeCounter{c, &managerWrites} },
		ApplyGrace: applyGrace})
	Expect(err).NotTo(HaveOccurred())
	k8sClient = env.Client
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "gw-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// issuedToken creates a token, waits until it is issued and returns its
// value and the gateway pin from its payload, as a device would scan them.
func issuedToken(ctx context.Context, token *mdmv1alpha1.EnrollmentToken) (value, pin string) {
	Expect(k8sClient.Create(ctx, token)).To(Succeed())
	secret := &corev1.Secret{}
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
		g.Expect(token.Status.Phase).To(Equal(mdmv1alpha1.TokenPending))
		g.Expect(token.Status.SecretRef).NotTo(BeNil())
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: token.Namespace, Name: token.Status.SecretRef.Name}, secret)).To(Succeed())
	}).Should(Succeed())
	// Wait until the gateway's cache can find the token by its hash.
	Eventually(func(g Gomega) {
		list := &mdmv1alpha1.EnrollmentTokenList{}
		g.Expect(env.Cache.List(ctx, list, client.MatchingFields{gateway.IndexTokenHash: token.Status.TokenHash})).To(Succeed())
		g.Expect(list.Items).To(HaveLen(1))
	}).Should(Succeed())
	var payload map[string]map[string]string
	Expect(json.Unmarshal(secret.Data[mdmv1alpha1.TokenSecretQRJSONKey], &payload)).To(Succeed())
	extras := payload["android.app.extra.PROVISIONING_ADMIN_EXTRAS_BUNDLE"]
	Expect(extras).To(HaveKey(enrollment.ExtraGatewayCAPin))
	Expect(secret.Data).To(HaveKeyWithValue(mdmv1alpha1.TokenSecretCAKey, env.CABundle))
	return string(secret.Data[mdmv1alpha1.TokenSecretKey]), extras[enrollment.ExtraGatewayCAPin]
}

func linuxToken(ns, name string, perpetual bool) *mdmv1alpha1.EnrollmentToken {
	return &mdmv1alpha1.EnrollmentToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       mdmv1alpha1.EnrollmentTokenSpec{Platform: mdmv1alpha1.PlatformLinux, Perpetual: perpetual},
	}
}

// newAgent is a simulated device that trusts the gateway through the pin.
func newAgent(token, pin, serial string) (*agent.Agent, *agent.Simulated) {
	state, err := agent.LoadState(GinkgoT().TempDir())
	Expect(err).NotTo(HaveOccurred())
	dev := &agent.Simulated{Serial: serial, PlatformName: "Linux", Model: "Sim 1", OSVersion: "6.1"}
	return agent.New(agent.Options{Gateway: env.GatewayAddr, Token: token, Trust: agent.Trust{Pin: pin},
		Heartbeat: time.Hour, MaxBackoff: 200 * time.Millisecond}, state, dev, ctrl.Log.WithName("agent").WithValues("serial", serial)), dev
}

// run runs an agent until the returned stop function is called.
func run(a *agent.Agent) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(a.Run(ctx)).To(Succeed())
	}()
	return func() {
		cancel()
		<-done
	}
}

// agentStateForCSR makes a fresh key and returns a PEM CSR for it.
func agentStateForCSR() (string, error) {
	st, err := agent.LoadState(GinkgoT().TempDir())
	if err != nil {
		return "", err
	}
	_, csr, err := st.NewKeyAndCSR()
	return string(csr), err
}
