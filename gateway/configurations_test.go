package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/agent"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

var _ = Describe("Configurations", func() {
	ctx := context.Background()
	var (
		ns  string
		a   *agent.Agent
		dev *agent.Simulated
	)
	BeforeEach(func() {
		ns = newNamespace(ctx)
		token := linuxToken(ns, "fleet", true)
		token.Spec.DeviceTemplate = &mdmv1alpha1.DeviceTemplate{Labels: map[string]string{"site": "lab"}}
		value, pin := issuedToken(ctx, token)
		a, dev = newAgent(value, pin, "ERIN")
		Expect(a.Enroll(ctx)).To(Succeed())
	})

	configuration := func(name string, priority int32, selector map[string]string, s mdmv1alpha1.ConfigurationSettings, platforms ...mdmv1alpha1.Platform) *mdmv1alpha1.Configuration {
		c := &mdmv1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: mdmv1alpha1.ConfigurationSpec{Priority: priority, Settings: s, Platforms: platforms}}
		if selector != nil {
			c.Spec.DeviceSelector = &metav1.LabelSelector{MatchLabels: selector}
		}
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		return c
	}
	revision := func(c *mdmv1alpha1.Configuration) func(Gomega) string {
		return func(g Gomega) string {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(c.Status.Conditions, mdmv1alpha1.ConditionReady)).To(BeTrue())
			return c.Status.Revision
		}
	}
	rows := func(g Gomega) map[string]mdmv1alpha1.DeviceConfigurationStatus {
		d := &mdmv1alpha1.Device{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "erin"}, d)).To(Succeed())
		out := map[string]mdmv1alpha1.DeviceConfigurationStatus{}
		for _, r := range d.Status.Configurations {
			out[r.Name] = r
		}
		return out
	}

	It("binds by selector and by name, merges per setting, and records every configuration's state", func() {
		stop := run(a)
		defer stop()
		base := configuration("base", 1, map[string]string{"site": "lab"}, mdmv1alpha1.ConfigurationSettings{
			Passcode: &mdmv1alpha1.PasscodeSettings{MinLength: ptr.To[int32](6), AutoLockSeconds: ptr.To[int32](60)},
			Files:    []mdmv1alpha1.FileSetting{{Path: "/etc/motd", Content: ptr.To("managed\n")}},
		})
		strict := configuration("strict", 10, nil, mdmv1alpha1.ConfigurationSettings{
			Passcode: &mdmv1alpha1.PasscodeSettings{MinLength: ptr.To[int32](12)}})
		shadow := configuration("shadow", 0, map[string]string{"site": "lab"}, mdmv1alpha1.ConfigurationSettings{
			Passcode: &mdmv1alpha1.PasscodeSettings{MinLength: ptr.To[int32](4)}})
		configuration("ios-only", 50, map[string]string{"site": "lab"}, mdmv1alpha1.ConfigurationSettings{
			Restrictions: &mdmv1alpha1.Restrictions{CameraDisabled: ptr.To(true)}}, mdmv1alpha1.PlatformIOS)
		configuration("other-site", 0, map[string]string{"site": "hq"}, mdmv1alpha1.ConfigurationSettings{
			Restrictions: &mdmv1alpha1.Restrictions{CameraDisabled: ptr.To(true)}})
		broken := configuration("broken", 0, nil, mdmv1alpha1.ConfigurationSettings{
			Apps: []mdmv1alpha1.AppSetting{{ID: "com.example.broken", InstallType: "Required"}}})
		dev.FailSettings = map[string]bool{"apps[com.example.broken]": true}
		baseRev, strictRev := revision(base), revision(strict)
		Eventually(baseRev).ShouldNot(BeEmpty())
		Eventually(revision(broken)).ShouldNot(BeEmpty())
		Eventually(revision(shadow)).ShouldNot(BeEmpty())

		d := &mdmv1alpha1.Device{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "erin"}, d)).To(Succeed())
		before := d.DeepCopy()
		d.Spec.Configurations = []mdmv1alpha1.ConfigurationAssignment{{Name: "strict"}, {Name: "broken"}, {Name: "ghost"}}
		Expect(k8sClient.Patch(ctx, d, client.MergeFrom(before))).To(Succeed())

		// The device holds the winning value of every setting.
		Eventually(func(g Gomega) {
			s := dev.Observe().Settings
			g.Expect(s).To(HaveLen(3))
			g.Expect(s).To(SatisfyAll(HaveKeyWithValue("passcode.minLength", "12"), HaveKeyWithValue("passcode.autoLockSeconds", "60"),
				HaveKey("files[/etc/motd]")))
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			r := rows(g)
			g.Expect(r).To(HaveLen(6))
			g.Expect(r["base"]).To(SatisfyAll(HaveField("State", mdmv1alpha1.ConfigurationApplied), HaveField("Revision", baseRev(g)),
				HaveField("Settings", ConsistOf(mdmv1alpha1.SettingStatus{Path: "passcode.minLength", Reason: "Overridden", Message: "Configuration strict sets it"}))))
			g.Expect(r["strict"]).To(SatisfyAll(HaveField("State", mdmv1alpha1.ConfigurationApplied), HaveField("Revision", strictRev(g))))
			g.Expect(r["shadow"]).To(SatisfyAll(HaveField("State", mdmv1alpha1.ConfigurationOverridden),
				HaveField("Settings", ConsistOf(mdmv1alpha1.SettingStatus{Path: "passcode.minLength", Reason: "Overridden", Message: "Configuration strict sets it"}))))
			g.Expect(r["ios-only"].State).To(Equal(mdmv1alpha1.ConfigurationUnsupported))
			g.Expect(r["ghost"]).To(SatisfyAll(HaveField("State", mdmv1alpha1.ConfigurationPending), HaveField("Message", ContainSubstring("does not exist"))))
			g.Expect(r["broken"]).To(SatisfyAll(HaveField("State", mdmv1alpha1.ConfigurationFailed),
				HaveField("Settings", ConsistOf(HaveField("Path", "apps[com.example.broken]")))))
			g.Expect(r).NotTo(HaveKey("other-site"))
		}).Should(Succeed())
		// Each Configuration counts its devices from their rows.
		counts := func(c *mdmv1alpha1.Configuration) func(Gomega) mdmv1alpha1.ConfigurationDeviceCounts {
			return func(g Gomega) mdmv1alpha1.ConfigurationDeviceCounts {
				g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
				g.Expect(c.Status.Devices).NotTo(BeNil())
				return *c.Status.Devices
			}
		}
		Eventually(counts(strict)).Should(Equal(mdmv1alpha1.ConfigurationDeviceCounts{Targeted: 1, Applied: 1}))
		Eventually(counts(shadow)).Should(Equal(mdmv1alpha1.ConfigurationDeviceCounts{Targeted: 1, Overridden: 1}))
		Eventually(counts(broken)).Should(Equal(mdmv1alpha1.ConfigurationDeviceCounts{Targeted: 1, Failed: 1}))

		// Excluding a selected configuration removes its settings; the
		// loser takes over what it no longer sets.
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
		before = d.DeepCopy()
		d.Spec.Configurations = append(d.Spec.Configurations, mdmv1alpha1.ConfigurationAssignment{Name: "base", Excluded: true})
		Expect(k8sClient.Patch(ctx, d, client.MergeFrom(before))).To(Succeed())
		Eventually(func() map[string]string { return dev.Observe().Settings }).Should(Equal(map[string]string{"passcode.minLength": "12"}))
		Eventually(func(g Gomega) mdmv1alpha1.ConfigurationState { return rows(g)["base"].State }).Should(Equal(mdmv1alpha1.ConfigurationExcluded))
		Eventually(counts(base)).Should(Equal(mdmv1alpha1.ConfigurationDeviceCounts{Excluded: 1}))

		// A new revision reaches the online device within seconds, and the
		// row follows it.
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(strict), strict)).To(Succeed())
		old := strict.Status.Revision
		updateConfiguration(ctx, strict, func(c *mdmv1alpha1.Configuration) { c.Spec.Settings.Passcode.MinLength = ptr.To[int32](14) })
		Eventually(strictRev).ShouldNot(Equal(old))
		Eventually(func() string { return dev.Observe().Settings["passcode.minLength"] }).WithTimeout(5 * time.Second).Should(Equal("14"))
		Eventually(func(g Gomega) {
			g.Expect(rows(g)["strict"]).To(SatisfyAll(HaveField("State", mdmv1alpha1.ConfigurationApplied), HaveField("Revision", strictRev(g))))
		}).Should(Succeed())

		// A setting the device cannot take keeps its value there, and the
		// row shows it: a passcode rule carries no secret.
		dev.FailSetting("passcode.minLength", true)
		updateConfiguration(ctx, strict, func(c *mdmv1alpha1.Configuration) { c.Spec.Settings.Passcode.MinLength = ptr.To[int32](16) })
		Eventually(func(g Gomega) {
			row := rows(g)["strict"]
			g.Expect(row.State).To(Equal(mdmv1alpha1.ConfigurationFailed))
			g.Expect(row.Settings).To(ContainElement(SatisfyAll(HaveField("Path", "passcode.minLength"),
				HaveField("Reason", mdmv1alpha1.SettingFailed), HaveField("Current", "14"))))
		}).Should(Succeed())
		dev.FailSetting("passcode.minLength", false)

		// A deleted Configuration is removed from the device.
		Expect(k8sClient.Delete(ctx, strict)).To(Succeed())
		Eventually(func() map[string]string { return dev.Observe().Settings }).Should(Equal(map[string]string{"passcode.minLength": "4"}))

		// Pushed back: the excluded configuration returns, wins over the
		// lower priority again, and a setting the device cannot hold is
		// reported Unsupported without failing it.
		dev.UnsupportSetting("passcode.autoLockSeconds", true)
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
		before = d.DeepCopy()
		d.Spec.Configurations = slices.DeleteFunc(d.Spec.Configurations, func(a mdmv1alpha1.ConfigurationAssignment) bool { return a.Name == "base" })
		Expect(k8sClient.Patch(ctx, d, client.MergeFrom(before))).To(Succeed())
		Eventually(func(g Gomega) {
			s := dev.Observe().Settings
			g.Expect(s).To(HaveLen(2))
			g.Expect(s).To(SatisfyAll(HaveKeyWithValue("passcode.minLength", "6"), HaveKey("files[/etc/motd]")))
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			r := rows(g)
			g.Expect(r["base"]).To(SatisfyAll(HaveField("State", mdmv1alpha1.ConfigurationApplied), HaveField("Revision", baseRev(g)),
				HaveField("Settings", ConsistOf(SatisfyAll(HaveField("Path", "passcode.autoLockSeconds"), HaveField("Reason", mdmv1alpha1.SettingUnsupported))))))
			g.Expect(r["shadow"].State).To(Equal(mdmv1alpha1.ConfigurationOverridden))
		}).Should(Succeed())
		Eventually(counts(base)).Should(Equal(mdmv1alpha1.ConfigurationDeviceCounts{Targeted: 1, Applied: 1}))
	})

	It("carries only Secrets labelled for devices, and their values only to the device", func() {
		const password = "correct-horse-battery-staple"
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "office-wifi"},
			StringData: map[string]string{"psk": password}}
		Expect(k8sClient.Create(ctx, secret)).To(Succeed())
		wifi := configuration("wifi", 0, map[string]string{"site": "lab"}, mdmv1alpha1.ConfigurationSettings{
			WiFi: []mdmv1alpha1.WiFiNetwork{{SSID: "office", Security: "WPA2",
				PasswordSecretRef: &mdmv1alpha1.SecretKeyRef{Name: "office-wifi", Key: "psk"}}}})
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(wifi), wifi)).To(Succeed())
			stalled := meta.FindStatusCondition(wifi.Status.Conditions, mdmv1alpha1.ConditionStalled)
			g.Expect(stalled).NotTo(BeNil())
			g.Expect(stalled.Reason).To(Equal(mdmv1alpha1.ConfigurationReasonPayloadNotAllowed))
			g.Expect(stalled.Message).To(ContainSubstring("Secret office-wifi is not labelled mdm.kubemdm.io/device-payload=true"))
		}).Should(Succeed())
		stop := run(a)
		defer stop()
		Eventually(func(g Gomega) mdmv1alpha1.ConfigurationState { return rows(g)["wifi"].State }).Should(Equal(mdmv1alpha1.ConfigurationPending))
		Consistently(func() []string {
			var names []string
			for _, c := range dev.Config().GetConfigurations() {
				names = append(names, c.GetName())
			}
			return names
		}, "500ms").Should(BeEmpty(), "nothing from an unlabelled Secret reaches the device")

		secret.Labels = map[string]string{mdmv1alpha1.LabelDevicePayload: "true"}
		Expect(k8sClient.Update(ctx, secret)).To(Succeed())
		Eventually(revision(wifi)).ShouldNot(BeEmpty())
		Eventually(func() string {
			for _, c := range dev.Config().GetConfigurations() {
				for _, w := range c.GetSettings().GetWifi() {
					return w.GetPassword()
				}
			}
			return ""
		}).Should(Equal(password))
		Eventually(func(g Gomega) mdmv1alpha1.ConfigurationState { return rows(g)["wifi"].State }).Should(Equal(mdmv1alpha1.ConfigurationApplied))

		// Rotating the password is a new revision.
		rev := wifi.Status.Revision
		secret.StringData = map[string]string{"psk": "rotated-" + password}
		Expect(k8sClient.Update(ctx, secret)).To(Succeed())
		Eventually(revision(wifi)).ShouldNot(Equal(rev))

		// The value is in no status, no event and no log line of the
		// manager or the agent.
		Expect(suiteLog.String()).NotTo(ContainSubstring(password))
		Expect(suiteLog.String()).To(ContainSubstring("office-wifi"), "the log is captured")
		d := &mdmv1alpha1.Device{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "erin"}, d)).To(Succeed())
		events := &corev1.EventList{}
		Expect(k8sClient.List(ctx, events, client.InNamespace(ns))).To(Succeed())
		for _, o := range []any{d, wifi, events} {
			b, err := json.Marshal(o)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(b)).NotTo(ContainSubstring(password))
		}
	})
})

var _ = Describe("Configuration compliance", func() {
	ctx := context.Background()

	It("checks the rules of the configurations that apply, naming them, and again when the rules change", func() {
		ns := newNamespace(ctx)
		token := linuxToken(ns, "fleet", true)
		token.Spec.DeviceTemplate = &mdmv1alpha1.DeviceTemplate{Labels: map[string]string{"site": "lab"}}
		value, pin := issuedToken(ctx, token)
		a, dev := newAgent(value, pin, "FRANK")
		dev.Unencrypted = true
		Expect(a.Enroll(ctx)).To(Succeed())
		DeferCleanup(run(a))
		cfg := &mdmv1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "secure"},
			Spec: mdmv1alpha1.ConfigurationSpec{
				DeviceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"site": "lab"}},
				Compliance:     &mdmv1alpha1.ComplianceRules{RequirePasscode: true, RequireEncryption: true, MinOSVersion: "6.0"},
				Settings:       mdmv1alpha1.ConfigurationSettings{Passcode: &mdmv1alpha1.PasscodeSettings{MinLength: ptr.To[int32](6)}}}}
		Expect(k8sClient.Create(ctx, cfg)).To(Succeed())
		compliance := func(g Gomega) *mdmv1alpha1.ComplianceStatus {
			d := &mdmv1alpha1.Device{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "frank"}, d)).To(Succeed())
			g.Expect(d.Status.Compliance).NotTo(BeNil())
			return d.Status.Compliance
		}
		// The passcode policy made the user set a screen lock; the disk is
		// not encrypted.
		Eventually(compliance).Should(SatisfyAll(HaveField("State", mdmv1alpha1.ComplianceNonCompliant),
			HaveField("Reasons", ConsistOf("the device has storage that is not encrypted; configuration secure requires encrypted storage"))))

		updateConfiguration(ctx, cfg, func(c *mdmv1alpha1.Configuration) { c.Spec.Compliance.RequireEncryption = false })
		Eventually(compliance).Should(HaveField("State", mdmv1alpha1.ComplianceCompliant))
	})
})

// applyGrace is the suite's: short, so that a device left behind shows.
const applyGrace = 3 * time.Second

var _ = Describe("Configuration revisions and compliance", func() {
	ctx := context.Background()

	It("makes a device that has not applied the due revision NonCompliant once the grace ends, and compliant again when it applies it", func() {
		ns := newNamespace(ctx)
		token := linuxToken(ns, "fleet", true)
		token.Spec.DeviceTemplate = &mdmv1alpha1.DeviceTemplate{Labels: map[string]string{"site": "lab"}}
		value, pin := issuedToken(ctx, token)
		a, _ := newAgent(value, pin, "GRACE")
		Expect(a.Enroll(ctx)).To(Succeed())
		stop := run(a)
		// Selected by label, never named by the Device.
		cfg := &mdmv1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lock"},
			Spec: mdmv1alpha1.ConfigurationSpec{
				DeviceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"site": "lab"}},
				Settings:       mdmv1alpha1.ConfigurationSettings{Passcode: &mdmv1alpha1.PasscodeSettings{MinLength: ptr.To[int32](6)}}}}
		Expect(k8sClient.Create(ctx, cfg)).To(Succeed())
		compliance := func(g Gomega) *mdmv1alpha1.ComplianceStatus {
			d := &mdmv1alpha1.Device{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "grace"}, d)).To(Succeed())
			g.Expect(d.Status.Compliance).NotTo(BeNil())
			return d.Status.Compliance
		}
		Eventually(compliance).Should(HaveField("State", mdmv1alpha1.ComplianceCompliant))
		first := revisionOf(ctx, cfg)
		// Compliant holds within the grace before any report too: stop the
		// agent only once its report of the first revision is stored, or
		// the device is "not reported" rather than behind.
		Eventually(func(g Gomega) []mdmv1alpha1.DeviceConfigurationStatus {
			d := &mdmv1alpha1.Device{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "grace"}, d)).To(Succeed())
			return d.Status.Configurations
		}).Should(ContainElement(SatisfyAll(HaveField("Name", "lock"), HaveField("Revision", first))))

		// Offline, the device cannot take the next revision.
		stop()
		updateConfiguration(ctx, cfg, func(c *mdmv1alpha1.Configuration) { c.Spec.Settings.Passcode.MinLength = ptr.To[int32](8) })
		var second string
		Eventually(func(g Gomega) {
			second = revisionOf(ctx, cfg)
			g.Expect(second).NotTo(Equal(first))
		}).Should(Succeed())
		// Within the grace it stays compliant, then it is not.
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(cfg), cfg)).To(Succeed())
		if within := time.Until(cfg.Status.RevisionTime.Add(applyGrace)) - time.Second; within > 0 {
			Consistently(compliance, within, 200*time.Millisecond).Should(HaveField("State", mdmv1alpha1.ComplianceCompliant))
		}
		Eventually(compliance, 2*applyGrace).Should(SatisfyAll(HaveField("State", mdmv1alpha1.ComplianceNonCompliant),
			HaveField("Reasons", ConsistOf(fmt.Sprintf("configuration lock is at revision %s; revision %s is due", first, second)))))

		DeferCleanup(run(a))
		Eventually(compliance).Should(HaveField("State", mdmv1alpha1.ComplianceCompliant))
	})
})

// updateConfiguration changes a Configuration's spec as read now, again
// when the controller wrote its status in between.
func updateConfiguration(ctx context.Context, cfg *mdmv1alpha1.Configuration, change func(*mdmv1alpha1.Configuration)) {
	GinkgoHelper()
	Eventually(func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(cfg), cfg); err != nil {
			return err
		}
		change(cfg)
		return k8sClient.Update(ctx, cfg)
	}).Should(Succeed())
}

// revisionOf reads a Configuration's settled revision.
func revisionOf(ctx context.Context, cfg *mdmv1alpha1.Configuration) string {
	GinkgoHelper()
	got := &mdmv1alpha1.Configuration{}
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(cfg), got)).To(Succeed())
	return got.Status.Revision
}

// rolloutRows says where each Device of a namespace stands, for a failure
// message.
func rolloutRows(ctx context.Context, ns string) string {
	list := &mdmv1alpha1.DeviceList{}
	if err := k8sClient.List(ctx, list, client.InNamespace(ns)); err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, d := range list.Items {
		fmt.Fprintf(&b, "\n%s %s connected=%v rows=%+v", d.Name, d.UID, meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected), d.Status.Configurations)
	}
	return b.String()
}

var _ = Describe("Configuration rollout", func() {
	ctx := context.Background()

	It("stages a new revision one device at a time and pauses when a device fails it", func() {
		ns := newNamespace(ctx)
		token := linuxToken(ns, "fleet", true)
		token.Spec.DeviceTemplate = &mdmv1alpha1.DeviceTemplate{Labels: map[string]string{"site": "lab"}}
		value, pin := issuedToken(ctx, token)
		devs := map[string]*agent.Simulated{}
		for i := range 10 {
			serial := fmt.Sprintf("R%02d", i)
			a, dev := newAgent(value, pin, serial)
			Expect(a.Enroll(ctx)).To(Succeed())
			devs[strings.ToLower(serial)] = dev
			DeferCleanup(run(a))
		}
		content := func(v string) *string { return ptr.To("version " + v + "\n") }
		cfg := &mdmv1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
			Spec: mdmv1alpha1.ConfigurationSpec{
				DeviceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"site": "lab"}},
				Rollout:        &mdmv1alpha1.RolloutSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1))},
				Settings:       mdmv1alpha1.ConfigurationSettings{Files: []mdmv1alpha1.FileSetting{{Path: "/etc/app.conf", Content: content("1")}}}}}
		Expect(k8sClient.Create(ctx, cfg)).To(Succeed())
		get := func(g Gomega) *mdmv1alpha1.Configuration {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(cfg), cfg)).To(Succeed())
			return cfg
		}
		// The first revision has nothing to stage from: every device takes it.
		Eventually(func(g Gomega) {
			c := get(g)
			g.Expect(c.Status.Devices).To(HaveValue(HaveField("Applied", int32(10))))
			g.Expect(c.Status.Rollout).To(BeNil())
		}).WithTimeout(20 * time.Second).Should(Succeed())
		first := cfg.Status.Revision

		// Revision 2 adds a passcode rule that one device cannot apply.
		devs["r07"].FailSetting("passcode.minLength", true)
		updateConfiguration(ctx, cfg, func(c *mdmv1alpha1.Configuration) {
			c.Spec.Settings.Files[0].Content = content("2")
			c.Spec.Settings.Passcode = &mdmv1alpha1.PasscodeSettings{MinLength: ptr.To[int32](8)}
		})

		// The rollout goes a device at a time and stops at the failure:
		// the devices after it keep revision 1. Up to ten batches, each
		// waiting for the one before: a minute on a loaded machine.
		Eventually(func(g Gomega) {
			c := get(g)
			stalled := meta.FindStatusCondition(c.Status.Conditions, mdmv1alpha1.ConditionStalled)
			g.Expect(stalled).NotTo(BeNil(), "rollout %+v, conditions %+v, devices %s", c.Status.Rollout, c.Status.Conditions, rolloutRows(ctx, ns))
			g.Expect(stalled.Reason).To(Equal(mdmv1alpha1.ConfigurationReasonRolloutPaused))
			g.Expect(c.Status.Rollout).NotTo(BeNil())
			g.Expect(c.Status.Rollout.Failed).To(Equal(int32(1)))
			g.Expect(c.Status.Rollout.PreviousRevision).To(Equal(first))
		}).WithTimeout(time.Minute).Should(Succeed())
		ro := cfg.Status.Rollout
		Expect(ro.Admitted).To(Equal(ro.Updated + ro.Failed))
		Consistently(func(g Gomega) int32 { return get(g).Status.Rollout.Admitted }, "1s").Should(Equal(ro.Admitted), "no batch after the failure")
		var onTwo, onOne int32
		for _, dev := range devs {
			switch m := dev.Observe(); {
			case m.Revisions["app"] == first:
				onOne++
			case m.Revisions["app"] == ro.Revision && m.Settings["passcode.minLength"] == "8":
				onTwo++
			}
		}
		Expect(onTwo).To(Equal(ro.Updated), "the admitted devices that succeeded run revision 2")
		Expect(onOne).To(Equal(10-ro.Admitted), "the devices not admitted keep revision 1")

		// A fixed revision starts a new rollout from where the devices are,
		// and it runs to the end.
		updateConfiguration(ctx, cfg, func(c *mdmv1alpha1.Configuration) {
			c.Spec.Settings.Passcode = nil
			c.Spec.Settings.Files[0].Content = content("3")
		})
		Eventually(func(g Gomega) {
			c := get(g)
			g.Expect(c.Status.Rollout).To(BeNil())
			g.Expect(c.Status.Devices).To(HaveValue(HaveField("Applied", int32(10))))
			g.Expect(meta.IsStatusConditionTrue(c.Status.Conditions, mdmv1alpha1.ConditionReady)).To(BeTrue())
		}).WithTimeout(time.Minute).Should(Succeed())
		for name, dev := range devs {
			Expect(dev.Observe().Settings).To(HaveLen(1), name)
		}
	})
})
