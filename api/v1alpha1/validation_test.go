package v1alpha1_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

var (
	testEnv   *envtest.Environment
	k8sClient client.Client
	ctx       = context.Background()
)

func TestValidation(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "API Validation Suite")
}

var _ = BeforeSuite(func() {
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	scheme := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(mdmv1alpha1.AddToScheme(scheme)).To(Succeed())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	Expect(testEnv.Stop()).To(Succeed())
})

// object builds a kubemdm object from the YAML of its spec (and status).
func object(kind, name, body string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	Expect(yaml.Unmarshal([]byte(body), &u.Object)).To(Succeed(), body)
	if u.Object == nil {
		u.Object = map[string]any{}
	}
	u.SetAPIVersion("mdm.kubemdm.io/v1alpha1")
	u.SetKind(kind)
	u.SetNamespace("default")
	u.SetName(name)
	return u
}

// rejection is one bad manifest and the exact field and message the
// apiserver must answer it with.
type rejection struct {
	kind string
	// create is applied first; without update or status it must be refused.
	create string
	// update, when set, replaces the created object's spec and must be refused.
	update string
	// status, when set, is written through the status subresource and must
	// be refused.
	status  string
	field   string
	message string
	// name, when set, is the object's name.
	name string
}

func devices(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("d%d", i)
	}
	return "[" + strings.Join(names, ", ") + "]"
}

var counter int

var _ = DescribeTable("the apiserver refuses bad manifests with the field and a message a person understands",
	func(r rejection) {
		counter++
		obj := object(r.kind, firstNonEmpty(r.name, fmt.Sprintf("bad-%d", counter)), r.create)
		err := k8sClient.Create(ctx, obj)
		if r.update != "" || r.status != "" {
			Expect(err).NotTo(HaveOccurred(), "the base object must be valid")
			changed := object(r.kind, obj.GetName(), firstNonEmpty(r.update, r.status))
			changed.SetResourceVersion(obj.GetResourceVersion())
			if r.update != "" {
				err = k8sClient.Update(ctx, changed)
			} else {
				changed.Object["spec"] = obj.Object["spec"]
				err = k8sClient.Status().Update(ctx, changed)
			}
		}
		Expect(err).To(HaveOccurred(), "the manifest was accepted")
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "not an Invalid error: %v", err)
		var status apierrors.APIStatus
		Expect(errors.As(err, &status)).To(BeTrue())
		causes := status.Status().Details.Causes
		Expect(causes).To(ContainElement(And(
			HaveField("Field", r.field),
			HaveField("Message", ContainSubstring(r.message)),
		)), "error was: %v", err)
	},

	// EnrollmentToken
	Entry("token: ttl and expiresAt together", rejection{kind: "EnrollmentToken",
		create: `{spec: {platform: Linux, ttl: 1h, expiresAt: "2030-01-01T00:00:00Z"}}`,
		field:  "spec", message: "set either ttl or expiresAt, not both"}),
	Entry("token: unknown platform", rejection{kind: "EnrollmentToken",
		create: `{spec: {platform: Symbian}}`,
		field:  "spec.platform", message: `Unsupported value: "Symbian"`}),
	Entry("token: missing platform", rejection{kind: "EnrollmentToken",
		create: `{spec: {ttl: 1h}}`,
		field:  "spec.platform", message: "Required value"}),
	Entry("token: zero ttl", rejection{kind: "EnrollmentToken",
		create: `{spec: {platform: Linux, ttl: 0s}}`,
		field:  "spec.ttl", message: "ttl must be a duration of at least 1s, such as 30m or 24h"}),
	Entry("token: ttl that is not a duration", rejection{kind: "EnrollmentToken",
		create: `{spec: {platform: Linux, ttl: tomorrow}}`,
		field:  "spec.ttl", message: "should match"}),
	Entry("token: provisioning on iOS", rejection{kind: "EnrollmentToken",
		create: `{spec: {platform: IOS, provisioning: {dpcComponentName: a.b/.C, dpcDownloadURL: "https://x.example/a.apk", dpcSignatureChecksum: gJD2YwtOiWJHkSMkkIfLRlj-quNqG1fb6v100QmzM9w}}}`,
		field:  "spec.provisioning", message: "provisioning (the Android QR payload) is only for the Android and AndroidAOSP platforms"}),
	Entry("token: device owner on Linux", rejection{kind: "EnrollmentToken",
		create: `{spec: {platform: Linux, managementMode: DeviceOwner}}`,
		field:  "spec.managementMode", message: "managementMode DeviceOwner or ProfileOwner is only for the Android and AndroidAOSP platforms"}),
	Entry("token: DPC download over plain http", rejection{kind: "EnrollmentToken",
		create: `{spec: {platform: Android, provisioning: {dpcComponentName: a.b/.C, dpcDownloadURL: "http://x.example/a.apk", dpcSignatureChecksum: gJD2YwtOiWJHkSMkkIfLRlj-quNqG1fb6v100QmzM9w}}}`,
		field:  "spec.provisioning.dpcDownloadURL", message: "dpcDownloadURL must be an https URL"}),
	Entry("token: secured Wi-Fi without a password reference", rejection{kind: "EnrollmentToken",
		create: `{spec: {platform: Android, provisioning: {dpcComponentName: a.b/.C, dpcDownloadURL: "https://x.example/a.apk", dpcSignatureChecksum: gJD2YwtOiWJHkSMkkIfLRlj-quNqG1fb6v100QmzM9w, wifi: {ssid: corp, securityType: WPA}}}}`,
		field:  "spec.provisioning.wifi", message: "passwordSecretRef is required for a secured network"}),
	Entry("token: malformed signature checksum", rejection{kind: "EnrollmentToken",
		create: `{spec: {platform: Android, provisioning: {dpcComponentName: a.b/.C, dpcDownloadURL: "https://x.example/a.apk", dpcSignatureChecksum: "not a checksum"}}}`,
		field:  "spec.provisioning.dpcSignatureChecksum", message: "should match"}),
	Entry("token: too many tags", rejection{kind: "EnrollmentToken",
		create: `{spec: {platform: Linux, tags: ` + devices(33) + `}}`,
		field:  "spec.tags", message: "must have at most 32 items"}),
	Entry("token: platform changed", rejection{kind: "EnrollmentToken",
		create: `{spec: {platform: Linux}}`, update: `{spec: {platform: Windows}}`,
		field: "spec.platform", message: "platform is immutable"}),
	Entry("token: revoked token reinstated", rejection{kind: "EnrollmentToken",
		create: `{spec: {platform: Linux, revoked: true}}`, update: `{spec: {platform: Linux, revoked: false}}`,
		field: "spec.revoked", message: "a revoked token cannot be reinstated; create a new EnrollmentToken"}),

	// Device
	Entry("device: missing platform", rejection{kind: "Device",
		create: `{spec: {owner: bob}}`,
		field:  "spec.platform", message: "Required value"}),
	Entry("device: kiosk on iOS", rejection{kind: "Device",
		create: `{spec: {platform: IOS, kiosk: {enabled: true, app: com.example.app}}}`,
		field:  "spec.kiosk", message: "kiosk mode is only available on the Android and AndroidAOSP platforms"}),
	Entry("device: kiosk without an app", rejection{kind: "Device",
		create: `{spec: {platform: Android, kiosk: {enabled: true}}}`,
		field:  "spec.kiosk", message: "kiosk.app is required when kiosk mode is enabled"}),
	Entry("device: lost mode with nothing to show", rejection{kind: "Device",
		create: `{spec: {platform: IOS, lostMode: {enabled: true}}}`,
		field:  "spec.lostMode", message: "lost mode needs a message or a phoneNumber"}),
	Entry("device: lost mode on Linux", rejection{kind: "Device",
		create: `{spec: {platform: Linux, lostMode: {enabled: true, message: call me}}}`,
		field:  "spec.lostMode", message: "lost mode is only available on the IOS, Android and AndroidAOSP platforms"}),
	Entry("device: unknown state", rejection{kind: "Device",
		create: `{spec: {platform: Linux, state: Lost}}`,
		field:  "spec.state", message: `supported values: "Active", "Disabled"`}),
	Entry("device: unknown deletion policy", rejection{kind: "Device",
		create: `{spec: {platform: Linux, deletionPolicy: Nuke}}`,
		field:  "spec.deletionPolicy", message: `supported values: "Retire", "Unenroll", "Orphan"`}),
	Entry("device: configuration assigned twice", rejection{kind: "Device",
		create: `{spec: {platform: Linux, configurations: [{name: wifi}, {name: wifi, priority: 2}]}}`,
		field:  "spec.configurations[1]", message: "Duplicate value"}),
	Entry("device: serial number changed", rejection{kind: "Device",
		create: `{spec: {platform: Linux, serialNumber: ABC123}}`, update: `{spec: {platform: Linux, serialNumber: XYZ789}}`,
		field: "spec.serialNumber", message: "serialNumber cannot be changed or removed once set"}),
	Entry("device: platform changed", rejection{kind: "Device",
		create: `{spec: {platform: Linux}}`, update: `{spec: {platform: ChromeOS}}`,
		field: "spec.platform", message: "platform is immutable"}),
	Entry("device: unenrollment phase outside the source API's values", rejection{kind: "Device",
		create: `{spec: {platform: Linux}}`, status: `{status: {unenrollment: {phase: done}}}`,
		field: "status.unenrollment.phase", message: `supported values: "pending", "success", "failed", "none"`}),
	Entry("device: upper-case unenrollment phase", rejection{kind: "Device",
		create: `{spec: {platform: Linux}}`, status: `{status: {unenrollment: {phase: Pending}}}`,
		field: "status.unenrollment.phase", message: `Unsupported value: "Pending"`}),

	// DeviceAction
	Entry("action: devices and selector together", rejection{kind: "DeviceAction",
		create: `{spec: {action: Lock, devices: [a], selector: {matchLabels: {site: x}}}}`,
		field:  "spec", message: "set exactly one of devices or selector"}),
	Entry("action: no targets", rejection{kind: "DeviceAction",
		create: `{spec: {action: Lock}}`,
		field:  "spec", message: "set exactly one of devices or selector"}),
	Entry("action: 51 devices", rejection{kind: "DeviceAction",
		create: `{spec: {action: Lock, devices: ` + devices(51) + `}}`,
		field:  "spec.devices", message: "must have at most 50 items"}),
	Entry("action: a device named twice", rejection{kind: "DeviceAction",
		create: `{spec: {action: Lock, devices: [a, b, a]}}`,
		field:  "spec.devices[2]", message: `Duplicate value: "a"`}),
	Entry("action: unknown action", rejection{kind: "DeviceAction",
		create: `{spec: {action: Explode, devices: [a]}}`,
		field:  "spec.action", message: `Unsupported value: "Explode"`}),
	Entry("action: Deprovision without a reason", rejection{kind: "DeviceAction",
		create: `{spec: {action: Deprovision, devices: [a], confirm: Deprovision}}`,
		field:  "spec.parameters", message: "parameters.deprovisionReason is required for Deprovision"}),
	Entry("action: a deprovision reason on Lock", rejection{kind: "DeviceAction",
		create: `{spec: {action: Lock, devices: [a], parameters: {deprovisionReason: RetiringDevice}}}`,
		field:  "spec.parameters", message: "parameters.deprovisionReason is only allowed for Deprovision"}),
	Entry("action: Wipe without confirm", rejection{kind: "DeviceAction",
		create: `{spec: {action: Wipe, devices: [a]}}`,
		field:  "spec.confirm", message: `confirm must be "Wipe" to run this destructive action`}),
	Entry("action: Retire confirmed with the wrong word", rejection{kind: "DeviceAction",
		create: `{spec: {action: Retire, devices: [a], confirm: "yes"}}`,
		field:  "spec.confirm", message: `confirm must be "Retire" to run this destructive action`}),
	Entry("action: SendMessage without a message", rejection{kind: "DeviceAction",
		create: `{spec: {action: SendMessage, devices: [a]}}`,
		field:  "spec.parameters", message: "parameters.message is required for SendMessage"}),
	Entry("action: EnableLostMode without text", rejection{kind: "DeviceAction",
		create: `{spec: {action: EnableLostMode, devices: [a]}}`,
		field:  "spec.parameters", message: "parameters.lostMode is required for EnableLostMode"}),
	Entry("action: zero deadline", rejection{kind: "DeviceAction",
		create: `{spec: {action: Lock, devices: [a], deadline: 0s}}`,
		field:  "spec.deadline", message: "deadline must be a duration between 1s and 2160h"}),
	Entry("action: spec changed after creation", rejection{kind: "DeviceAction",
		create: `{spec: {action: Lock, devices: [a]}}`, update: `{spec: {action: Wipe, devices: [a], confirm: Wipe}}`,
		field: "spec", message: "spec is immutable except cancel; create a new DeviceAction instead"}),
	Entry("action: devices changed after creation", rejection{kind: "DeviceAction",
		create: `{spec: {action: Lock, devices: [a]}}`, update: `{spec: {action: Lock, devices: [a, b]}}`,
		field: "spec.devices", message: "spec.devices is immutable"}),
	Entry("action: devices swapped for a selector", rejection{kind: "DeviceAction",
		create: `{spec: {action: Lock, devices: [a]}}`, update: `{spec: {action: Lock, selector: {matchLabels: {a: b}}}}`,
		field: "spec", message: "spec is immutable except cancel"}),
	Entry("action: a message changed after creation", rejection{kind: "DeviceAction",
		create: `{spec: {action: SendMessage, devices: [a], parameters: {message: {title: t, body: b}}}}`,
		update: `{spec: {action: SendMessage, devices: [a], parameters: {message: {title: t, body: other}}}}`,
		field:  "spec.parameters", message: "spec.parameters is immutable"}),
	Entry("action: a cancel undone", rejection{kind: "DeviceAction",
		create: `{spec: {action: Lock, devices: [a], cancel: true}}`, update: `{spec: {action: Lock, devices: [a], cancel: false}}`,
		field: "spec.cancel", message: "cancel cannot be undone"}),

	// Configuration
	Entry("configuration: no settings", rejection{kind: "Configuration",
		create: `{spec: {settings: {}}}`,
		field:  "spec.settings", message: "should have at least 1 properties"}),
	Entry("configuration: a relative file path", rejection{kind: "Configuration",
		create: `{spec: {settings: {files: [{path: etc/motd, content: x}]}}}`,
		field:  "spec.settings.files[0].path", message: "path must be absolute and clean"}),
	Entry("configuration: a file path with ..", rejection{kind: "Configuration",
		create: `{spec: {settings: {files: [{path: /etc/../shadow, content: x}]}}}`,
		field:  "spec.settings.files[0].path", message: "path must be absolute and clean"}),
	Entry("configuration: a mode that is not octal", rejection{kind: "Configuration",
		create: `{spec: {settings: {files: [{path: /etc/motd, mode: "0855", content: x}]}}}`,
		field:  "spec.settings.files[0].mode", message: "should match"}),
	Entry("configuration: a file with two sources", rejection{kind: "Configuration",
		create: `{spec: {settings: {files: [{path: /etc/motd, content: x, secretRef: {name: s, key: k}}]}}}`,
		field:  "spec.settings.files[0]", message: "exactly one of content, configMapRef and secretRef"}),
	Entry("configuration: two kiosk apps", rejection{kind: "Configuration",
		create: `{spec: {settings: {apps: [{id: com.a.b, installType: Kiosk}, {id: com.c.d, installType: Kiosk}]}}}`,
		field:  "spec.settings.apps", message: "at most one app may have installType Kiosk"}),
	Entry("configuration: a malformed app version", rejection{kind: "Configuration",
		create: `{spec: {settings: {apps: [{id: com.a.b, installType: Required, version: latest}]}}}`,
		field:  "spec.settings.apps[0].version", message: "should match"}),
	Entry("configuration: WPA2 without a password", rejection{kind: "Configuration",
		create: `{spec: {settings: {wifi: [{ssid: office, security: WPA2}]}}}`,
		field:  "spec.settings.wifi[0]", message: "passwordSecretRef is required for WPA2 and WPA3"}),
	Entry("configuration: a window without times", rejection{kind: "Configuration",
		create: `{spec: {settings: {systemUpdate: {policy: Windowed}}}}`,
		field:  "spec.settings.systemUpdate", message: "windowStart and windowEnd are required for the Windowed policy"}),
	Entry("configuration: a zero batch", rejection{kind: "Configuration",
		create: `{spec: {rollout: {maxUnavailable: 0}, settings: {passcode: {minLength: 6}}}}`,
		field:  "spec.rollout.maxUnavailable", message: "maxUnavailable must be a count of at least 1 or a percentage from 1% to 100%"}),
	Entry("configuration: a batch of 150%", rejection{kind: "Configuration",
		create: `{spec: {rollout: {maxUnavailable: "150%"}, settings: {passcode: {minLength: 6}}}}`,
		field:  "spec.rollout.maxUnavailable", message: "maxUnavailable must be a count of at least 1 or a percentage from 1% to 100%"}),
	Entry("configuration: a file owner that is no user name", rejection{kind: "Configuration",
		create: `{spec: {settings: {files: [{path: /etc/motd, content: x, owner: "Bad User"}]}}}`,
		field:  "spec.settings.files[0].owner", message: "should match"}),
	Entry("configuration: a name longer than a label value", rejection{kind: "Configuration",
		name:   strings.Repeat("c", 64),
		create: `{spec: {settings: {passcode: {minLength: 6}}}}`,
		field:  "<nil>", message: "metadata.name must be at most 63 characters"}),
	Entry("configuration: a version on an absent package", rejection{kind: "Configuration",
		create: `{spec: {settings: {packages: [{name: curl, state: Absent, version: "7.88"}]}}}`,
		field:  "spec.settings.packages[0]", message: "version is only allowed for a Present package"}),
)

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

var _ = Describe("the samples", func() {
	It("are accepted by the apiserver as they are", func() {
		files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "mdm_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(files).NotTo(BeEmpty())
		for _, f := range files {
			raw, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			u := &unstructured.Unstructured{}
			Expect(yaml.Unmarshal(raw, &u.Object)).To(Succeed(), f)
			u.SetNamespace("samples")
			Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, namespace("samples")))).To(Succeed())
			Expect(k8sClient.Create(ctx, u)).To(Succeed(), f)
		}
	})

	It("get the schema defaults", func() {
		obj := object("DeviceAction", "defaults", `{spec: {action: Sync, devices: [a]}}`)
		Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		Expect(obj.Object["spec"]).To(HaveKeyWithValue("deadline", "24h"))
		dev := object("Device", "defaults", `{spec: {platform: Linux}}`)
		Expect(k8sClient.Create(ctx, dev)).To(Succeed())
		Expect(dev.Object["spec"]).To(HaveKeyWithValue("deletionPolicy", "Retire"))
		// No default for state: the creator must not own it, or no action
		// could ever set it.
		Expect(dev.Object["spec"]).NotTo(HaveKey("state"))
	})

	It("select Devices by owner, platform and phase with field selectors", func() {
		for i, owner := range []string{"carol", "dave", "carol"} {
			Expect(k8sClient.Create(ctx, object("Device", fmt.Sprintf("sel-%d", i), `{spec: {platform: Linux, owner: `+owner+`}}`))).To(Succeed())
		}
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion("mdm.kubemdm.io/v1alpha1")
		list.SetKind("DeviceList")
		Expect(k8sClient.List(ctx, list, client.InNamespace("default"), client.MatchingFields{"spec.owner": "carol"})).To(Succeed())
		Expect(list.Items).To(HaveLen(2))
		Expect(k8sClient.List(ctx, list, client.InNamespace("default"), client.MatchingFields{"spec.platform": "Linux", "spec.owner": "dave"})).To(Succeed())
		Expect(list.Items).To(HaveLen(1))
	})
})

func namespace(name string) client.Object {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("Namespace")
	u.SetName(name)
	return u
}

var _ = Describe("a DeviceAction's cancel", func() {
	It("may be turned on after creation, the one change allowed", func() {
		obj := object("DeviceAction", "cancel-me", `{spec: {action: Wipe, devices: [a], confirm: Wipe}}`)
		Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		changed := object("DeviceAction", "cancel-me", `{spec: {action: Wipe, devices: [a], confirm: Wipe, cancel: true}}`)
		changed.SetResourceVersion(obj.GetResourceVersion())
		Expect(k8sClient.Update(ctx, changed)).To(Succeed())
	})

	It("may be turned on by a typed client's update, which writes the deadline its own way", func() {
		a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "cancel-typed"},
			Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock, Devices: []string{"a"}, Confirm: ""}}
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		// Read back, the deadline is the default 24h; sent again it is
		// "24h0m0s", the same duration.
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		a.Spec.Cancel = true
		Expect(k8sClient.Update(ctx, a)).To(Succeed())
		a.Spec.Deadline = &metav1.Duration{Duration: time.Hour}
		err := k8sClient.Update(ctx, a)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "a changed deadline: %v", err)
	})
})
