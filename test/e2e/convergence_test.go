package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/argohealth"
)

// kstatus computes an object's status with sigs.k8s.io/cli-utils, as
// kubectl wait, Flux and the Argo CD health script read it.
func kstatus(obj client.Object) string {
	m, err := argohealth.ToMap(obj)
	Expect(err).NotTo(HaveOccurred())
	s, err := argohealth.Kstatus(m)
	Expect(err).NotTo(HaveOccurred())
	return string(s)
}

func patchSpec(ctx context.Context, ns, name string, mutate func(*mdmv1alpha1.Device)) {
	d := device(ctx, ns, name)
	before := d.DeepCopy()
	mutate(d)
	Expect(k8sClient.Patch(ctx, d, client.MergeFrom(before))).To(Succeed())
}

func configState(ctx context.Context, ns, name string) func() map[string]mdmv1alpha1.ConfigurationState {
	return func() map[string]mdmv1alpha1.ConfigurationState {
		out := map[string]mdmv1alpha1.ConfigurationState{}
		for _, c := range device(ctx, ns, name).Status.Configurations {
			out[c.Name] = c.State
		}
		return out
	}
}

var _ = Describe("Convergence", func() {
	ctx := context.Background()

	It("installs, excludes, re-pushes and reports configurations, and is kstatus Current when converged", func() {
		f := newFleet(ctx)
		dev := f.enroll(ctx, "conv")
		f.connect("conv")
		Eventually(func() string { return kstatus(device(ctx, f.ns, "conv")) }).Should(Equal("Current"))

		f.configurations(ctx, "wifi", "vpn", "broken")
		patchSpec(ctx, f.ns, "conv", func(d *mdmv1alpha1.Device) {
			d.Spec.Configurations = []mdmv1alpha1.ConfigurationAssignment{{Name: "wifi"}, {Name: "vpn"}}
		})
		Eventually(configState(ctx, f.ns, "conv")).Should(Equal(map[string]mdmv1alpha1.ConfigurationState{
			"wifi": mdmv1alpha1.ConfigurationApplied, "vpn": mdmv1alpha1.ConfigurationApplied}))
		Eventually(func() string { return kstatus(device(ctx, f.ns, "conv")) }).Should(Equal("Current"))
		d := device(ctx, f.ns, "conv")
		Expect(d.Status.AppliedConfigGeneration).To(Equal(d.Generation))
		Expect(meta.IsStatusConditionTrue(d.Status.Conditions, mdmv1alpha1.DeviceConditionConfigApplied)).To(BeTrue())

		// Excluding uninstalls, removing the exclusion pushes it again.
		patchSpec(ctx, f.ns, "conv", func(d *mdmv1alpha1.Device) { d.Spec.Configurations[1].Excluded = true })
		Eventually(configState(ctx, f.ns, "conv")).Should(HaveKeyWithValue("vpn", mdmv1alpha1.ConfigurationExcluded))
		patchSpec(ctx, f.ns, "conv", func(d *mdmv1alpha1.Device) { d.Spec.Configurations[1].Excluded = false })
		Eventually(configState(ctx, f.ns, "conv")).Should(HaveKeyWithValue("vpn", mdmv1alpha1.ConfigurationApplied))

		// Kiosk and lost mode reach the device and come back in status.
		patchSpec(ctx, f.ns, "conv", func(d *mdmv1alpha1.Device) {
			d.Spec.Attributes = map[string]string{"room": "B12"}
		})
		Eventually(func() map[string]string { return dev.Config().GetAttributes() }).Should(HaveKeyWithValue("room", "B12"))

		// A configuration that fails to install stalls the device with the reason.
		dev.FailConfiguration("broken")
		patchSpec(ctx, f.ns, "conv", func(d *mdmv1alpha1.Device) {
			d.Spec.Configurations = append(d.Spec.Configurations, mdmv1alpha1.ConfigurationAssignment{Name: "broken"})
		})
		Eventually(func(g Gomega) {
			d := device(ctx, f.ns, "conv")
			g.Expect(kstatus(d)).To(Equal("Failed"))
			stalled := meta.FindStatusCondition(d.Status.Conditions, mdmv1alpha1.ConditionStalled)
			g.Expect(stalled.Reason).To(Equal("ConfigurationFailed"))
			g.Expect(stalled.Message).To(ContainSubstring("broken"))
		}).Should(Succeed())
	})

	It("reports a reassignment Initiated, then Succeeded or Failed from the device's answer", func() {
		f := newFleet(ctx)
		dev := f.enroll(ctx, "shared")
		dev.RefuseOwners = map[string]bool{"mallory@example.com": true}
		f.connect("shared")
		patchSpec(ctx, f.ns, "shared", func(d *mdmv1alpha1.Device) { d.Spec.Owner = "erin@example.com" })
		Eventually(func() *mdmv1alpha1.ReassignmentStatus { return device(ctx, f.ns, "shared").Status.Reassignment }).Should(
			SatisfyAll(Not(BeNil()), HaveField("Phase", mdmv1alpha1.ReassignmentSucceeded), HaveField("Owner", "erin@example.com")))

		patchSpec(ctx, f.ns, "shared", func(d *mdmv1alpha1.Device) { d.Spec.Owner = "mallory@example.com" })
		Eventually(func() *mdmv1alpha1.ReassignmentStatus { return device(ctx, f.ns, "shared").Status.Reassignment }).Should(
			SatisfyAll(HaveField("Phase", mdmv1alpha1.ReassignmentFailed), HaveField("Owner", "mallory@example.com"),
				HaveField("Message", ContainSubstring(`reports owner "erin@example.com"`))))
	})

	It("replaces, patches and removes attributes with kubectl-style patches and server-side apply, and queries by field", func() {
		f := newFleet(ctx)
		f.enroll(ctx, "attrs")
		d := device(ctx, f.ns, "attrs")
		merge := func(body string) {
			Expect(k8sClient.Patch(ctx, d, client.RawPatch(types.MergePatchType, []byte(body)))).To(Succeed())
		}
		merge(`{"spec":{"attributes":{"costCenter":"42","floor":"3"}}}`)
		merge(`{"spec":{"attributes":{"floor":"4"}}}`)
		Expect(device(ctx, f.ns, "attrs").Spec.Attributes).To(Equal(map[string]string{"costCenter": "42", "floor": "4"}))
		merge(`{"spec":{"attributes":{"floor":null}}}`)
		Expect(device(ctx, f.ns, "attrs").Spec.Attributes).To(Equal(map[string]string{"costCenter": "42"}))
		Expect(k8sClient.Patch(ctx, d, client.RawPatch(types.JSONPatchType,
			[]byte(`[{"op":"replace","path":"/spec/attributes","value":{"team":"sre"}}]`)))).To(Succeed())
		Expect(device(ctx, f.ns, "attrs").Spec.Attributes).To(Equal(map[string]string{"team": "sre"}))
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "mdm.kubemdm.io/v1alpha1", "kind": "Device",
			"metadata": map[string]any{"name": "attrs", "namespace": f.ns},
			"spec":     map[string]any{"platform": "Linux", "attributes": map[string]any{"team": "sre", "rack": "r7"}}}}
		Expect(k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("alice"))).To(Succeed())
		Expect(device(ctx, f.ns, "attrs").Spec.Attributes).To(Equal(map[string]string{"team": "sre", "rack": "r7"}))

		// An agent that enrolled and has yet to connect is shown Enrolled
		// within seconds: the controller waits for its connection to
		// write the enrollment with it (ADR 13).
		Eventually(func(g Gomega) {
			list := &mdmv1alpha1.DeviceList{}
			g.Expect(k8sClient.List(ctx, list, client.InNamespace(f.ns), client.MatchingFields{"status.phase": "Enrolled", "spec.platform": "Linux"})).To(Succeed())
			g.Expect(list.Items).To(ConsistOf(HaveField("Name", "attrs")))
		}).WithTimeout(15 * time.Second).Should(Succeed())
	})

	It("never writes a Device's spec, labels or annotations that Git applied", func() {
		// Git registers the device first; the agent that enrolls with the
		// same serial number claims it.
		f := newFleet(ctx)
		manifest := map[string]any{"apiVersion": "mdm.kubemdm.io/v1alpha1", "kind": "Device",
			"metadata": map[string]any{"name": "gitops", "namespace": f.ns,
				"labels":      map[string]any{"app.kubernetes.io/instance": "fleet", "site": "paris"},
				"annotations": map[string]any{"argocd.argoproj.io/tracking-id": "fleet:mdm.kubemdm.io/Device:" + f.ns + "/gitops"}},
			"spec": map[string]any{"platform": "Linux", "serialNumber": "gitops", "owner": "frank@example.com", "state": "Active",
				"attributes":     map[string]any{"costCenter": "7"},
				"configurations": []any{map[string]any{"name": "baseline", "priority": int64(1)}},
				"deletionPolicy": "Retire"}}
		Expect(k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: manifest}),
			client.FieldOwner("argocd-controller"), client.ForceOwnership)).To(Succeed())
		Eventually(func() mdmv1alpha1.DevicePhase { return device(ctx, f.ns, "gitops").Status.Phase }).Should(Equal(mdmv1alpha1.DeviceRegistered))
		f.enroll(ctx, "gitops")
		f.connect("gitops")
		Eventually(func() string { return kstatus(device(ctx, f.ns, "gitops")) }).Should(Equal("Current"))
		before := device(ctx, f.ns, "gitops")

		// Reports, actions and a reassignment all run against it.
		for i, action := range []mdmv1alpha1.ActionType{mdmv1alpha1.ActionSync, mdmv1alpha1.ActionLock, mdmv1alpha1.ActionSendMessage, mdmv1alpha1.ActionDisable} {
			spec := mdmv1alpha1.DeviceActionSpec{Action: action, Devices: []string{"gitops"}}
			if action == mdmv1alpha1.ActionSendMessage {
				spec.Parameters = &mdmv1alpha1.ActionParameters{Message: &mdmv1alpha1.MessageParameters{Title: "t", Body: "b"}}
			}
			a := f.action(ctx, fmt.Sprintf("gitops-%d", i), spec)
			Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", Not(BeEmpty())))
		}
		Eventually(func() string { return kstatus(device(ctx, f.ns, "gitops")) }).Should(Equal("Current"))
		after := device(ctx, f.ns, "gitops")

		js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
		Expect(js(after.Spec)).To(Equal(js(before.Spec)), "spec byte-identical")
		Expect(js(after.Labels)).To(Equal(js(before.Labels)), "labels byte-identical")
		Expect(js(after.Annotations)).To(Equal(js(before.Annotations)), "annotations byte-identical")
		Expect(after.Generation).To(Equal(before.Generation))
		for _, mf := range after.ManagedFields {
			if mf.Subresource == "status" || mf.Manager == "argocd-controller" {
				continue
			}
			raw := string(mf.FieldsV1.Raw)
			Expect(raw).NotTo(ContainSubstring(`"f:spec"`), "manager %s (%s) owns spec fields: %s", mf.Manager, mf.Operation, raw)
			Expect(raw).NotTo(ContainSubstring(`"f:labels"`), "manager %s owns labels", mf.Manager)
			Expect(raw).NotTo(ContainSubstring(`"f:annotations"`), "manager %s owns annotations", mf.Manager)
		}
		Expect(strings.Join(managers(after), ",")).To(ContainSubstring("argocd-controller"))
	})
})

func managers(d *mdmv1alpha1.Device) []string {
	var out []string
	for _, mf := range d.ManagedFields {
		out = append(out, mf.Manager+"/"+string(mf.Operation)+"/"+mf.Subresource)
	}
	return out
}

var _ = Describe("Compliance and certificates", func() {
	ctx := context.Background()

	It("evaluates the rules of the device's configurations and re-evaluates at once on SyncCompliance", func() {
		f := newFleet(ctx)
		f.enroll(ctx, "audit")
		f.connect("audit")
		f.configurations(ctx, "baseline")
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "corp-ca",
			Labels: map[string]string{mdmv1alpha1.LabelDevicePayload: "true"}}, StringData: map[string]string{"ca.crt": "-----BEGIN CERTIFICATE-----\n"}})).To(Succeed())
		Expect(k8sClient.Create(ctx, &mdmv1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "corp-cert"},
			Spec: mdmv1alpha1.ConfigurationSpec{Settings: mdmv1alpha1.ConfigurationSettings{Certificates: []mdmv1alpha1.CertificatePayload{
				{Name: "corp-cert", Type: "CA", SecretRef: mdmv1alpha1.SecretKeyRef{Name: "corp-ca", Key: "ca.crt"}}}}}})).To(Succeed())
		patchSpec(ctx, f.ns, "audit", func(d *mdmv1alpha1.Device) {
			d.Spec.Configurations = []mdmv1alpha1.ConfigurationAssignment{{Name: "baseline", MinOSVersion: "2.0"}, {Name: "corp-cert"}}
		})
		Eventually(func(g Gomega) {
			d := device(ctx, f.ns, "audit")
			g.Expect(d.Status.Compliance).NotTo(BeNil())
			g.Expect(d.Status.Compliance.State).To(Equal(mdmv1alpha1.ComplianceNonCompliant))
			g.Expect(d.Status.Compliance.Reasons).To(ConsistOf(`OS version "1.0" is older than 2.0, which configuration baseline requires`))
			compliant := meta.FindStatusCondition(d.Status.Conditions, mdmv1alpha1.DeviceConditionCompliant)
			g.Expect(compliant.Status).To(Equal(metav1.ConditionFalse))
			// The certificate the configuration installed is listed next to
			// the device's identity.
			g.Expect(d.Status.Certificates).To(ContainElements(
				HaveField("Source", "identity"),
				SatisfyAll(HaveField("Subject", "CN=corp-cert"), HaveField("Source", "corp-cert"))))
		}).Should(Succeed())

		patchSpec(ctx, f.ns, "audit", func(d *mdmv1alpha1.Device) { d.Spec.Configurations[0].MinOSVersion = "1.0" })
		Eventually(func() mdmv1alpha1.ComplianceState { return device(ctx, f.ns, "audit").Status.Compliance.State }).
			Should(Equal(mdmv1alpha1.ComplianceCompliant))
		first := device(ctx, f.ns, "audit").Status.Compliance.LastEvaluated

		time.Sleep(1100 * time.Millisecond) // timestamps have second precision
		a := f.action(ctx, "sync-compliance", mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionSyncCompliance, Devices: []string{"audit"}})
		Eventually(finished(ctx, a)).Should(HaveField("Status.Phase", mdmv1alpha1.ActionSucceeded))
		Eventually(func() time.Time { return device(ctx, f.ns, "audit").Status.Compliance.LastEvaluated.Time }).
			Should(BeTemporally(">", first.Time))
	})
})
