package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// installRoles applies config/rbac/people/kubemdm_roles.yaml as it is
// shipped: its names are final, and none of them is a built-in role.
func installRoles(ctx context.Context) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "people", "kubemdm_roles.yaml"))
	Expect(err).NotTo(HaveOccurred())
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		role := &rbacv1.ClusterRole{}
		Expect(yaml.Unmarshal([]byte(doc), role)).To(Succeed())
		Expect(role.Name).To(HavePrefix("kubemdm-"), "a people role must not collide with the cluster's own roles")
		Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, role))).To(Succeed())
	}
}

// userClient is a client authenticated as a user bound to role in ns.
func userClient(ctx context.Context, name, role, ns string) client.Client {
	user, err := env.Environment.ControlPlane.AddUser(envtest.User{Name: name}, env.Config)
	Expect(err).NotTo(HaveOccurred())
	Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-" + role},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: name}},
	})).To(Succeed())
	c, err := client.New(user.Config(), client.Options{Scheme: env.Scheme})
	Expect(err).NotTo(HaveOccurred())
	return c
}

type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

var _ = Describe("Admission", func() {
	ctx := context.Background()

	It("lets an operator lock but not wipe, naming the missing verb", func() {
		installRoles(ctx)
		f := newFleet(ctx)
		f.enroll(ctx, "op-1")
		olivia := userClient(ctx, "olivia", "kubemdm-operator", f.ns)
		Eventually(func() error {
			return olivia.Create(ctx, &mdmv1alpha1.DeviceAction{
				ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "lock"},
				Spec:       mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock, Devices: []string{"op-1"}}})
		}).Should(Succeed())
		err := olivia.Create(ctx, &mdmv1alpha1.DeviceAction{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "wipe"},
			Spec:       mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionWipe, Confirm: "Wipe", Devices: []string{"op-1"}}})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "err: %v", err)
		Expect(err.Error()).To(ContainSubstring(`needs the "wipe" verb on devices.mdm.kubemdm.io`))

		adam := userClient(ctx, "adam", "kubemdm-admin", f.ns)
		Expect(adam.Create(ctx, &mdmv1alpha1.DeviceAction{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "wipe"},
			Spec:       mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionWipe, Confirm: "Wipe", Devices: []string{"op-1"}}})).To(Succeed())
	})

	It("lets only someone who may retire a device delete it when that retires it", func() {
		installRoles(ctx)
		f := newFleet(ctx)
		f.enroll(ctx, "del-1")
		f.enroll(ctx, "del-2")
		olivia := userClient(ctx, "olivia", "kubemdm-operator", f.ns)
		var err error
		Eventually(func() bool {
			err = olivia.Delete(ctx, device(ctx, f.ns, "del-1"))
			return apierrors.IsForbidden(err)
		}).Should(BeTrue(), "err: %v", err)
		Expect(err.Error()).To(ContainSubstring(`deleting Device del-1 runs its deletionPolicy Retire on the device, which needs the "retire" verb on devices.mdm.kubemdm.io`))
		Expect(device(ctx, f.ns, "del-1").DeletionTimestamp).To(BeNil())

		// Orphan releases the device without touching it: no verb needed.
		setPolicy(ctx, f.ns, "del-2", mdmv1alpha1.DeletionPolicyOrphan)
		Expect(olivia.Delete(ctx, device(ctx, f.ns, "del-2"))).To(Succeed())

		adam := userClient(ctx, "adam", "kubemdm-admin", f.ns)
		Expect(adam.Delete(ctx, device(ctx, f.ns, "del-1"))).To(Succeed())

		// The device is offline, so the deletion waits for its Retire; the
		// policy it was allowed under cannot be swapped meanwhile.
		d := device(ctx, f.ns, "del-1")
		Expect(d.DeletionTimestamp).NotTo(BeNil())
		before := d.DeepCopy()
		d.Spec.DeletionPolicy = mdmv1alpha1.DeletionPolicyUnenroll
		err = olivia.Patch(ctx, d, client.MergeFrom(before))
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "err: %v", err)
		Expect(err.Error()).To(ContainSubstring("is being deleted with deletionPolicy Retire, which can no longer change"))
	})

	It("refuses a compliance request that is not a time, or is dated ahead, naming the annotation", func() {
		f := newFleet(ctx)
		bad := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "when",
			Annotations: map[string]string{mdmv1alpha1.AnnotationComplianceRequested: "yesterday"}},
			Spec: mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformLinux}}
		err := k8sClient.Create(ctx, bad)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "err: %v", err)
		Expect(err.Error()).To(ContainSubstring(`metadata.annotations[mdm.kubemdm.io/compliance-requested]: Invalid value: "yesterday": must be an RFC 3339 time`))

		bad.Annotations = nil
		Expect(k8sClient.Create(ctx, bad)).To(Succeed())
		annotate := func(value string) error {
			d := device(ctx, f.ns, "when")
			before := d.DeepCopy()
			metav1.SetMetaDataAnnotation(&d.ObjectMeta, mdmv1alpha1.AnnotationComplianceRequested, value)
			return k8sClient.Patch(ctx, d, client.MergeFrom(before))
		}
		err = annotate(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "err: %v", err)
		Expect(err.Error()).To(ContainSubstring("is more than 1m0s ahead"))
		Expect(annotate(time.Now().UTC().Format(time.RFC3339))).To(Succeed())
	})

	It("warns about ineligible devices on a server-side dry run and creates nothing", func() {
		f := newFleet(ctx)
		f.enroll(ctx, "dr-1")
		w := &warnings{}
		cfg := rest.CopyConfig(env.Config)
		cfg.WarningHandler = w
		c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
		Expect(err).NotTo(HaveOccurred())
		a := &mdmv1alpha1.DeviceAction{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "kiosk"},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionEnterKiosk, Devices: []string{"dr-1", "ghost"},
				Parameters: &mdmv1alpha1.ActionParameters{KioskApp: "com.example.app"}}}
		Expect(c.Create(ctx, a, client.DryRunAll)).To(Succeed())
		Expect(w.list).To(ContainElements(
			ContainSubstring("device dr-1: ineligible: EnterKiosk is not available on Linux devices (code 12)"),
			ContainSubstring("device ghost: not found (code 5)"),
		))
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a))).To(BeTrue())
	})

	It("stamps the dates of a manual unenrollment override on the server", func() {
		f := newFleet(ctx)
		f.enroll(ctx, "manual")
		d := device(ctx, f.ns, "manual")
		set := func(phase string) *mdmv1alpha1.UnenrollmentStatus {
			// Dates sent by the client are ignored.
			body := `{"status":{"unenrollment":{"phase":"` + phase + `","requestDate":"2000-01-01T00:00:00Z","executionDate":"2000-01-01T00:00:00Z"}}}`
			Expect(k8sClient.Status().Patch(ctx, d, client.RawPatch("application/merge-patch+json", []byte(body)))).To(Succeed())
			return device(ctx, f.ns, "manual").Status.Unenrollment
		}
		recent := func() types.GomegaMatcher { return BeTemporally("~", time.Now(), 5*time.Second) }

		u := set("pending")
		Expect(u.RequestDate.Time).To(recent())
		Expect(u.ExecutionDate).To(BeNil())
		requested := u.RequestDate

		// Changing only the dates is undone: they stay the server's.
		u = set("pending")
		Expect(u.RequestDate).To(Equal(requested), "a client's requestDate is ignored")
		Expect(u.ExecutionDate).To(BeNil(), "a client's executionDate is ignored")

		u = set("success")
		Expect(u.RequestDate).To(Equal(requested), "success keeps requestDate")
		Expect(u.ExecutionDate.Time).To(recent())

		u = set("failed")
		Expect(u.RequestDate).To(Equal(requested), "failed keeps requestDate")
		Expect(u.ExecutionDate.Time).To(recent())

		u = set("none")
		Expect(u.RequestDate).To(BeNil())
		Expect(u.ExecutionDate).To(BeNil())
	})
})
