package e2e

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

var _ = DescribeTable("every action type runs end to end on a device that supports it",
	func(platform mdmv1alpha1.Platform, spec mdmv1alpha1.DeviceActionSpec, check func(d *mdmv1alpha1.Device)) {
		ctx := context.Background()
		f := newPlatformFleet(ctx, platform)
		name := strings.ToLower(string(spec.Action))
		dev := f.enroll(ctx, name)
		f.connect(name)
		spec.Devices = []string{name}
		if spec.Action.NeedsConfirm() {
			spec.Confirm = string(spec.Action)
		}
		if spec.Action == mdmv1alpha1.ActionReinstallConfiguration {
			// The device reinstalls only what it has installed.
			f.configurations(ctx, spec.Parameters.Configurations...)
			patchSpec(ctx, f.ns, name, func(d *mdmv1alpha1.Device) {
				for _, c := range spec.Parameters.Configurations {
					d.Spec.Configurations = append(d.Spec.Configurations, mdmv1alpha1.ConfigurationAssignment{Name: c})
				}
			})
			Eventually(func() map[string]int { return dev.Observe().Installed }).Should(HaveLen(len(spec.Parameters.Configurations)))
			// status.configurations says when each was last written, to
			// the second: the reinstall falls in a later one.
			Eventually(func(g Gomega) {
				d := &mdmv1alpha1.Device{}
				g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: name}, d)).To(Succeed())
				g.Expect(d.Status.Configurations).To(HaveEach(HaveField("AppliedTime", Not(BeNil()))))
				g.Expect(d.Status.Configurations).To(HaveLen(len(spec.Parameters.Configurations)))
			}).Should(Succeed())
			time.Sleep(1100 * time.Millisecond)
		}
		began := metav1.NewTime(time.Now().Truncate(time.Second))
		a := f.action(ctx, name, spec)
		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionSucceeded),
			func() string { return fmt.Sprintf("rows: %+v", a.Status.Devices) })
		Expect(rowOf(a, name)).To(SatisfyAll(HaveField("Phase", mdmv1alpha1.CommandSucceeded), HaveField("Code", int32(0))))
		Expect(dev.Executed()).To(HaveLen(1))
		cmd := dev.Executed()[0]
		Expect(cmd.GetAction()).To(Equal(string(spec.Action)))
		Expect(cmd.GetId()).To(Equal(string(a.UID)))
		if p := spec.Parameters; p != nil {
			Expect(cmd.GetParameters().GetKioskApp()).To(Equal(p.KioskApp))
			Expect(cmd.GetParameters().GetOsVersion()).To(Equal(p.OSVersion))
			Expect(cmd.GetParameters().GetConfigurations()).To(Equal(p.Configurations))
			Expect(cmd.GetParameters().GetDeprovisionReason()).To(Equal(string(p.DeprovisionReason)))
			if p.Message != nil {
				Expect(cmd.GetParameters().GetMessageBody()).To(Equal(p.Message.Body))
			}
		}
		// What the device shows now, as its model observes it.
		m := dev.Observe()
		switch spec.Action {
		case mdmv1alpha1.ActionLock:
			Expect(m.Locked).To(BeTrue())
		case mdmv1alpha1.ActionWipe:
			Expect(m.Wiped).To(BeTrue())
		case mdmv1alpha1.ActionRetire, mdmv1alpha1.ActionUnenroll, mdmv1alpha1.ActionDeprovision:
			Expect(m.Released).To(BeTrue())
			Expect(m.Installed).To(BeEmpty())
		case mdmv1alpha1.ActionRestart:
			Expect(m.Boots).To(Equal(1))
		case mdmv1alpha1.ActionSendMessage:
			Expect(m.Messages).To(Equal([]string{"IT: Please update"}))
		case mdmv1alpha1.ActionLogoutUser:
			Expect(m.SessionEnded).To(BeTrue())
		case mdmv1alpha1.ActionUpdateOS:
			Expect(m.OSVersion).To(Equal("18.2"))
		case mdmv1alpha1.ActionReinstallConfiguration:
			Expect(m.Installed).To(Equal(map[string]int{"vpn": 2, "wifi": 2}))
			Eventually(func(g Gomega) {
				d := &mdmv1alpha1.Device{}
				g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: name}, d)).To(Succeed())
				for _, row := range d.Status.Configurations {
					g.Expect(row.AppliedTime).NotTo(BeNil())
					g.Expect(row.AppliedTime.Before(&began)).To(BeFalse(), "row %s last written %s, before the reinstall at %s", row.Name, row.AppliedTime, began)
				}
			}).Should(Succeed())
		case mdmv1alpha1.ActionEnterKiosk:
			Expect(m.Kiosk.GetEnabled()).To(BeTrue())
			Expect(m.Kiosk.GetApp()).To(Equal("com.example.kiosk"))
		case mdmv1alpha1.ActionEnableLostMode:
			Expect(m.LostMode.GetEnabled()).To(BeTrue())
			Expect(m.LostMode.GetMessage()).To(Equal("Call IT"))
		case mdmv1alpha1.ActionDisable:
			Expect(m.Disabled).To(BeTrue())
		}
		if check != nil {
			Eventually(func(g Gomega) {
				d := &mdmv1alpha1.Device{}
				g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: name}, d)).To(Succeed())
				check(d)
			}).Should(Succeed())
		}
	},
	Entry(nil, mdmv1alpha1.PlatformIOS, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock}, nil),
	Entry(nil, mdmv1alpha1.PlatformIOS, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionUnlock}, nil),
	Entry(nil, mdmv1alpha1.PlatformWindows, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionWipe},
		func(d *mdmv1alpha1.Device) { Expect(d.Status.Phase).To(Equal(mdmv1alpha1.DeviceWiped)) }),
	Entry(nil, mdmv1alpha1.PlatformAndroid, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionRetire},
		func(d *mdmv1alpha1.Device) { Expect(d.Status.Phase).To(Equal(mdmv1alpha1.DeviceRetired)) }),
	Entry(nil, mdmv1alpha1.PlatformAndroidAOSP, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionUnenroll},
		func(d *mdmv1alpha1.Device) {
			Expect(d.Status.Phase).To(Equal(mdmv1alpha1.DeviceUnenrolled))
			Expect(d.Status.Unenrollment.Phase).To(Equal(mdmv1alpha1.UnenrollmentSuccess))
		}),
	Entry(nil, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionRestart}, nil),
	Entry(nil, mdmv1alpha1.PlatformLinux, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionSync}, nil),
	Entry(nil, mdmv1alpha1.PlatformIOS, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionSendMessage,
		Parameters: &mdmv1alpha1.ActionParameters{Message: &mdmv1alpha1.MessageParameters{Title: "IT", Body: "Please update"}}}, nil),
	Entry(nil, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLogoutUser}, nil),
	Entry(nil, mdmv1alpha1.PlatformIOS, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionUpdateOS,
		Parameters: &mdmv1alpha1.ActionParameters{OSVersion: "18.2"}},
		// The device reports the OS it runs after the update.
		func(d *mdmv1alpha1.Device) { Expect(d.Status.DeviceInfo.OSVersion).To(Equal("18.2")) }),
	Entry(nil, mdmv1alpha1.PlatformWindows, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionReinstallConfiguration,
		Parameters: &mdmv1alpha1.ActionParameters{Configurations: []string{"vpn", "wifi"}}}, nil),
	Entry(nil, mdmv1alpha1.PlatformLinux, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionSyncCompliance}, nil),
	Entry(nil, mdmv1alpha1.PlatformAndroid, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionEnterKiosk,
		Parameters: &mdmv1alpha1.ActionParameters{KioskApp: "com.example.kiosk"}},
		func(d *mdmv1alpha1.Device) {
			Expect(d.Spec.Kiosk).To(Equal(&mdmv1alpha1.KioskSpec{Enabled: true, App: "com.example.kiosk"}))
			// The new spec reached the device, which reports it back.
			Expect(d.Status.Kiosk).To(Equal(&mdmv1alpha1.KioskStatus{Enabled: true, App: "com.example.kiosk"}))
		}),
	Entry(nil, mdmv1alpha1.PlatformAndroid, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionExitKiosk},
		func(d *mdmv1alpha1.Device) { Expect(d.Spec.Kiosk).To(Equal(&mdmv1alpha1.KioskSpec{Enabled: false})) }),
	Entry(nil, mdmv1alpha1.PlatformIOS, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionEnableLostMode,
		Parameters: &mdmv1alpha1.ActionParameters{LostMode: &mdmv1alpha1.LostModeParameters{Message: "Call IT", PhoneNumber: "+33 1 23 45 67 89"}}},
		func(d *mdmv1alpha1.Device) {
			Expect(d.Spec.LostMode).To(Equal(&mdmv1alpha1.LostModeSpec{Enabled: true, Message: "Call IT", PhoneNumber: "+33 1 23 45 67 89"}))
			Expect(d.Status.LostMode).To(Equal(&mdmv1alpha1.LostModeStatus{Enabled: true, Message: "Call IT", PhoneNumber: "+33 1 23 45 67 89"}))
		}),
	Entry(nil, mdmv1alpha1.PlatformIOS, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionDisableLostMode},
		func(d *mdmv1alpha1.Device) { Expect(d.Spec.LostMode.Enabled).To(BeFalse()) }),
	Entry(nil, mdmv1alpha1.PlatformAndroid, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionRelinquish}, nil),
	Entry(nil, mdmv1alpha1.PlatformAndroid, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionCancelRelinquish}, nil),
	Entry(nil, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionDisable},
		func(d *mdmv1alpha1.Device) {
			Expect(d.Spec.State).To(Equal(mdmv1alpha1.DeviceStateDisabled))
			Expect(d.Status.Phase).To(Equal(mdmv1alpha1.DeviceDisabled))
		}),
	Entry(nil, mdmv1alpha1.PlatformChromeOS, mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionDeprovision,
		Parameters: &mdmv1alpha1.ActionParameters{DeprovisionReason: "RetiringDevice"}},
		func(d *mdmv1alpha1.Device) { Expect(d.Status.Phase).To(Equal(mdmv1alpha1.DeviceDeprovisioned)) }),
)

var _ = It("runs a 50-device batch of mixed platforms and phases with a code per device as the eligibility table says", func() {
	ctx := context.Background()
	android := newPlatformFleet(ctx, mdmv1alpha1.PlatformAndroid)
	ns := android.ns
	// Other platforms enroll into the same namespace with their own tokens.
	other := func(p mdmv1alpha1.Platform) *fleet {
		token := &mdmv1alpha1.EnrollmentToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: strings.ToLower(string(p))},
			Spec: mdmv1alpha1.EnrollmentTokenSpec{Platform: p, Perpetual: true}}
		Expect(k8sClient.Create(ctx, token)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
			g.Expect(token.Status.Phase).To(Equal(mdmv1alpha1.TokenPending))
		}).Should(Succeed())
		f := &fleet{platform: p, ns: ns, agents: android.agents, devices: android.devices}
		f.token = tokenValue(ctx, ns, token.Name+"-token")
		return f
	}
	ios, chrome := other(mdmv1alpha1.PlatformIOS), other(mdmv1alpha1.PlatformChromeOS)

	want := map[string]int32{} // device -> code; -1 means eligible and succeeded
	var names []string
	add := func(name string, code int32) { names = append(names, name); want[name] = code }
	for i := range 15 {
		name := fmt.Sprintf("android-%02d", i)
		android.enroll(ctx, name)
		android.connect(name)
		add(name, -1)
	}
	for i := range 10 {
		name := fmt.Sprintf("ios-%02d", i)
		ios.enroll(ctx, name)
		add(name, mdmv1alpha1.CodeUnimplemented)
	}
	for i := range 5 {
		name := fmt.Sprintf("chromeos-%02d", i)
		chrome.enroll(ctx, name)
		add(name, mdmv1alpha1.CodeUnimplemented)
	}
	for i := range 5 {
		name := fmt.Sprintf("registered-%02d", i)
		Expect(k8sClient.Create(ctx, &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformAndroid}})).To(Succeed())
		add(name, mdmv1alpha1.CodeFailedPrecondition)
	}
	for _, phase := range []mdmv1alpha1.DevicePhase{mdmv1alpha1.DeviceRetired, mdmv1alpha1.DeviceDisabled} {
		for i := range 5 {
			name := fmt.Sprintf("%s-%02d", strings.ToLower(string(phase)), i)
			android.enroll(ctx, name)
			d := device(ctx, ns, name)
			before := d.DeepCopy()
			d.Status.Phase = phase
			Expect(k8sClient.Status().Patch(ctx, d, client.MergeFrom(before))).To(Succeed())
			add(name, mdmv1alpha1.CodeFailedPrecondition)
		}
	}
	for i := range 5 {
		add(fmt.Sprintf("missing-%02d", i), mdmv1alpha1.CodeNotFound)
	}
	Expect(names).To(HaveLen(50))
	// The registered devices and the patched phases must be in the cache
	// before the action resolves its targets.
	Eventually(func(g Gomega) {
		for _, name := range names {
			if strings.HasPrefix(name, "missing") {
				continue
			}
			d := &mdmv1alpha1.Device{}
			g.Expect(env.Cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
			g.Expect(d.Status.Phase).NotTo(BeEmpty())
		}
	}).Should(Succeed())

	a := android.action(ctx, "kiosk-50", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionEnterKiosk, Devices: names,
		Parameters: &mdmv1alpha1.ActionParameters{KioskApp: "com.example.kiosk"}})
	Eventually(finished(ctx, a)).WithTimeout(30 * time.Second).Should(HaveField("Status.Phase", mdmv1alpha1.ActionPartiallySucceeded))
	Expect(a.Status.Devices).To(HaveLen(50))
	for _, name := range names {
		row := rowOf(a, name)
		if want[name] == -1 {
			Expect(row).To(SatisfyAll(HaveField("Phase", mdmv1alpha1.CommandSucceeded), HaveField("Code", int32(0))), name)
		} else {
			Expect(row.Code).To(Equal(want[name]), "%s: %s", name, row.Message)
		}
	}
	Expect(a.Status.Summary).To(Equal(&mdmv1alpha1.ActionSummary{Total: 50, Succeeded: 15, Ineligible: 30, Failed: 5}))

	// 51 devices are refused by the schema.
	err := k8sClient.Create(ctx, &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "too-many"},
		Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock, Devices: append(names, "one-more")}})
	Expect(err).To(MatchError(ContainSubstring("must have at most 50 items")))
})

var _ = It("finishes a 50-device action across a manager restart with no row lost or duplicated", func() {
	ctx := context.Background()
	f := newFleet(ctx)
	var names []string
	for i := range 50 {
		name := fmt.Sprintf("node-%02d", i)
		f.enroll(ctx, name)
		names = append(names, name)
	}
	for _, name := range names[:25] {
		f.connect(name)
	}
	a := f.action(ctx, "sync-50", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionSync, Devices: names})
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		g.Expect(a.Status.Summary).NotTo(BeNil())
		g.Expect(a.Status.Summary.Succeeded).To(BeNumerically(">=", 25))
	}).Should(Succeed())

	Expect(env.RestartManager()).To(Succeed())
	for _, name := range names[25:] {
		f.connect(name)
	}
	Eventually(finished(ctx, a)).WithTimeout(30 * time.Second).Should(HaveField("Status.Phase", mdmv1alpha1.ActionSucceeded))
	Expect(a.Status.Devices).To(HaveLen(50))
	seen := map[string]bool{}
	for _, row := range a.Status.Devices {
		Expect(seen[row.Name]).To(BeFalse(), "row %s twice", row.Name)
		seen[row.Name] = true
		Expect(row.Phase).To(Equal(mdmv1alpha1.CommandSucceeded))
	}
	for _, name := range names {
		Expect(f.devices[name].Executed()).To(HaveLen(1), "%s ran the command once", name)
	}
})
