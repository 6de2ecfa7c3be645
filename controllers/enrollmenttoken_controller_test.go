package controllers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/enrollment"
	"github.com/kubemdm/kubemdm/internal/qrscan"
)

// issuedValues collects every token value the tests saw, so that the last
// spec can assert none of them leaked into status, events or logs.
var issuedValues []string

func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "et-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func androidToken(ns, name string) *mdmv1alpha1.EnrollmentToken {
	return &mdmv1alpha1.EnrollmentToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: mdmv1alpha1.EnrollmentTokenSpec{
			Platform:       mdmv1alpha1.PlatformAndroid,
			ManagementMode: mdmv1alpha1.ManagementModeDeviceOwner,
			Owner:          "alice@example.com",
			DPCBuildTag:    "stable",
			Provisioning: &mdmv1alpha1.AndroidProvisioning{
				DPCComponentName:     "io.kubemdm.agent/.AdminReceiver",
				DPCDownloadURL:       "https://downloads.example.com/agent.apk",
				DPCSignatureChecksum: "gJD2YwtOiWJHkSMkkIfLRlj-quNqG1fb6v100QmzM9w",
			},
		},
	}
}

// issued waits until the token is Pending with its Secret, and returns both.
func issued(ctx context.Context, token *mdmv1alpha1.EnrollmentToken) *corev1.Secret {
	secret := &corev1.Secret{}
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
		g.Expect(token.Status.Phase).To(Equal(mdmv1alpha1.TokenPending))
		g.Expect(token.Status.SecretRef).NotTo(BeNil())
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: token.Namespace, Name: token.Status.SecretRef.Name}, secret)).To(Succeed())
	}).Should(Succeed())
	issuedValues = append(issuedValues, string(secret.Data[mdmv1alpha1.TokenSecretKey]))
	return secret
}

func secretGone(ctx context.Context, ns, name string) func(g Gomega) {
	return func(g Gomega) {
		err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Secret %s still exists (err %v)", name, err)
	}
}

func decodeQR(pngBytes []byte) string {
	img, err := png.Decode(bytes.NewReader(pngBytes))
	Expect(err).NotTo(HaveOccurred())
	text, err := qrscan.Decode(img)
	Expect(err).NotTo(HaveOccurred())
	return text
}

var _ = Describe("EnrollmentToken", Ordered, func() {
	var ns string
	ctx := context.Background()

	BeforeAll(func() { ns = newNamespace(ctx) })

	It("issues its value into an owned Secret and publishes only the hash", func() {
		token := androidToken(ns, "phones")
		token.Spec.TTL = &metav1.Duration{Duration: time.Hour}
		Expect(k8sClient.Create(ctx, token)).To(Succeed())
		secret := issued(ctx, token)

		Expect(metav1.IsControlledBy(secret, token)).To(BeTrue())
		Expect(secret.Type).To(Equal(corev1.SecretType("mdm.kubemdm.io/enrollment-token")))
		Expect(secret.Data).To(SatisfyAll(
			HaveKey(mdmv1alpha1.TokenSecretKey), HaveKey(mdmv1alpha1.TokenSecretQRJSONKey), HaveKey(mdmv1alpha1.TokenSecretQRPNGKey)))
		value := string(secret.Data[mdmv1alpha1.TokenSecretKey])
		Expect(enrollment.WellFormed(value)).To(BeTrue())
		Expect(token.Status.TokenHash).To(Equal(enrollment.Hash(value)))
		Expect(token.Status.EnrollmentHost).To(Equal(enrollmentHost))
		Expect(token.Status.ExpiresAt.Time).To(BeTemporally("~", token.CreationTimestamp.Add(time.Hour), time.Second))
		Expect(token.Finalizers).To(ContainElement(mdmv1alpha1.Finalizer))

		ready := meta.FindStatusCondition(token.Status.Conditions, mdmv1alpha1.ConditionReady)
		Expect(ready).NotTo(BeNil())
		Expect(ready.Status).To(Equal(metav1.ConditionTrue))
		Expect(ready.Reason).To(Equal(mdmv1alpha1.TokenReasonIssued))
		Expect(token.Status.ObservedGeneration).To(Equal(token.Generation))
		Expect(meta.FindStatusCondition(token.Status.Conditions, mdmv1alpha1.ConditionReconciling)).To(BeNil())
		Expect(meta.FindStatusCondition(token.Status.Conditions, mdmv1alpha1.ConditionStalled)).To(BeNil())
	})

	It("builds the Android device-owner QR payload and a PNG that decodes back to it", func() {
		token := &mdmv1alpha1.EnrollmentToken{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "phones"}, token)).To(Succeed())
		secret := issued(ctx, token)

		var payload map[string]any
		Expect(json.Unmarshal(secret.Data[mdmv1alpha1.TokenSecretQRJSONKey], &payload)).To(Succeed())
		Expect(payload).To(SatisfyAll(
			HaveKeyWithValue("android.app.extra.PROVISIONING_DEVICE_ADMIN_COMPONENT_NAME", "io.kubemdm.agent/.AdminReceiver"),
			HaveKeyWithValue("android.app.extra.PROVISIONING_DEVICE_ADMIN_PACKAGE_DOWNLOAD_LOCATION", "https://downloads.example.com/agent.apk"),
			HaveKeyWithValue("android.app.extra.PROVISIONING_DEVICE_ADMIN_SIGNATURE_CHECKSUM", "gJD2YwtOiWJHkSMkkIfLRlj-quNqG1fb6v100QmzM9w"),
			HaveKey("android.app.extra.PROVISIONING_ADMIN_EXTRAS_BUNDLE"),
		))
		Expect(payload["android.app.extra.PROVISIONING_ADMIN_EXTRAS_BUNDLE"]).To(SatisfyAll(
			HaveKeyWithValue(enrollment.ExtraToken, string(secret.Data[mdmv1alpha1.TokenSecretKey])),
			HaveKeyWithValue(enrollment.ExtraEnrollmentHost, enrollmentHost),
			HaveKeyWithValue(enrollment.ExtraNamespace, ns),
			HaveKeyWithValue(enrollment.ExtraDPCBuildTag, "stable"),
			HaveKeyWithValue(enrollment.ExtraManagementMode, "DeviceOwner"),
		))
		Expect(decodeQR(secret.Data[mdmv1alpha1.TokenSecretQRPNGKey])).To(Equal(string(secret.Data[mdmv1alpha1.TokenSecretQRJSONKey])))
	})

	It("waits for the Wi-Fi password Secret, then puts the password in the payload", func() {
		token := androidToken(ns, "wifi")
		token.Spec.Provisioning.Wifi = &mdmv1alpha1.ProvisioningWifi{
			SSID: "corp", SecurityType: "WPA",
			PasswordSecretRef: &mdmv1alpha1.SecretKeyRef{Name: "corp-wifi", Key: "password"},
		}
		Expect(k8sClient.Create(ctx, token)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
			rec := meta.FindStatusCondition(token.Status.Conditions, mdmv1alpha1.ConditionReconciling)
			g.Expect(rec).NotTo(BeNil())
			g.Expect(rec.Reason).To(Equal(mdmv1alpha1.TokenReasonWifiSecretUnavailable))
			g.Expect(rec.Message).To(ContainSubstring(`Secret "corp-wifi"`))
			g.Expect(meta.IsStatusConditionFalse(token.Status.Conditions, mdmv1alpha1.ConditionReady)).To(BeTrue())
		}).Should(Succeed())
		Expect(token.Status.TokenHash).To(BeEmpty(), "no value may be issued before its QR code can be built")

		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "corp-wifi"},
			StringData: map[string]string{"password": "correct horse battery staple"},
		})).To(Succeed())
		secret := issued(ctx, token)
		var payload map[string]any
		Expect(json.Unmarshal(secret.Data[mdmv1alpha1.TokenSecretQRJSONKey], &payload)).To(Succeed())
		Expect(payload).To(SatisfyAll(
			HaveKeyWithValue("android.app.extra.PROVISIONING_WIFI_SSID", "corp"),
			HaveKeyWithValue("android.app.extra.PROVISIONING_WIFI_SECURITY_TYPE", "WPA"),
			HaveKeyWithValue("android.app.extra.PROVISIONING_WIFI_PASSWORD", "correct horse battery staple"),
		))
		Expect(meta.IsStatusConditionTrue(token.Status.Conditions, mdmv1alpha1.ConditionReady)).To(BeTrue())
	})

	It("gives a non-Android token a payload with the admin extras alone", func() {
		token := &mdmv1alpha1.EnrollmentToken{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "linux"},
			Spec:       mdmv1alpha1.EnrollmentTokenSpec{Platform: mdmv1alpha1.PlatformLinux, Perpetual: true},
		}
		Expect(k8sClient.Create(ctx, token)).To(Succeed())
		secret := issued(ctx, token)
		Expect(token.Status.ExpiresAt.Time).To(BeTemporally("~", token.CreationTimestamp.Add(24*time.Hour), time.Second), "the default ttl is 24h")
		var payload map[string]map[string]string
		Expect(json.Unmarshal(secret.Data[mdmv1alpha1.TokenSecretQRJSONKey], &payload)).To(Succeed())
		Expect(payload).To(HaveLen(1))
		Expect(payload["android.app.extra.PROVISIONING_ADMIN_EXTRAS_BUNDLE"]).To(HaveKeyWithValue(enrollment.ExtraToken, string(secret.Data[mdmv1alpha1.TokenSecretKey])))
	})

	It("expires exactly at expiresAt and destroys the value", func() {
		token := &mdmv1alpha1.EnrollmentToken{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "short"},
			Spec:       mdmv1alpha1.EnrollmentTokenSpec{Platform: mdmv1alpha1.PlatformLinux, TTL: &metav1.Duration{Duration: 4 * time.Second}},
		}
		Expect(k8sClient.Create(ctx, token)).To(Succeed())
		secret := issued(ctx, token)
		expiresAt := token.Status.ExpiresAt.Time

		// Pending right up to the instant...
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
			g.Expect(token.Status.Phase).To(Equal(mdmv1alpha1.TokenPending))
		}).WithTimeout(time.Until(expiresAt) - 500*time.Millisecond).WithPolling(200 * time.Millisecond).Should(Succeed())
		// ...and Expired right after it, with no poll loop to wait for.
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
			g.Expect(token.Status.Phase).To(Equal(mdmv1alpha1.TokenExpired))
		}).WithTimeout(3 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		Expect(time.Now()).To(BeTemporally(">=", expiresAt))
		Eventually(secretGone(ctx, ns, secret.Name)).Should(Succeed())

		// Expired did not do what the token was made for: kstatus Failed.
		ready := meta.FindStatusCondition(token.Status.Conditions, mdmv1alpha1.ConditionReady)
		Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		Expect(ready.Reason).To(Equal(mdmv1alpha1.TokenReasonExpired))
		Expect(meta.IsStatusConditionTrue(token.Status.Conditions, mdmv1alpha1.ConditionStalled)).To(BeTrue())
		Expect(kstatusOf(token)).To(Equal(status.FailedStatus))
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
			g.Expect(token.Status.SecretRef).To(BeNil())
		}).Should(Succeed())
	})

	It("destroys the value of a revoked token and keeps the object for audit", func() {
		token := androidToken(ns, "revoke-me")
		Expect(k8sClient.Create(ctx, token)).To(Succeed())
		secret := issued(ctx, token)
		hash := token.Status.TokenHash

		before := token.DeepCopy()
		token.Spec.Revoked = true
		Expect(k8sClient.Patch(ctx, token, client.MergeFrom(before))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
			g.Expect(token.Status.Phase).To(Equal(mdmv1alpha1.TokenDeleted))
			g.Expect(token.Status.SecretRef).To(BeNil())
			g.Expect(token.Status.ObservedGeneration).To(Equal(token.Generation))
		}).Should(Succeed())
		Eventually(secretGone(ctx, ns, secret.Name)).Should(Succeed())
		Expect(token.Status.TokenHash).To(Equal(hash), "the hash stays for audit")
		// Revoked is what the spec asks: settled, kstatus Current.
		ready := meta.FindStatusCondition(token.Status.Conditions, mdmv1alpha1.ConditionReady)
		Expect(ready.Status).To(Equal(metav1.ConditionTrue))
		Expect(ready.Reason).To(Equal(mdmv1alpha1.TokenReasonRevoked))
		Expect(kstatusOf(token)).To(Equal(status.CurrentStatus))
		Consistently(secretGone(ctx, ns, secret.Name)).WithTimeout(time.Second).Should(Succeed(), "a revoked token must not be reissued")
	})

	It("destroys the value of a consumed one-time token", func() {
		token := &mdmv1alpha1.EnrollmentToken{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "once"},
			Spec:       mdmv1alpha1.EnrollmentTokenSpec{Platform: mdmv1alpha1.PlatformLinux},
		}
		Expect(k8sClient.Create(ctx, token)).To(Succeed())
		secret := issued(ctx, token)
		// The gateway marks a one-time token Done when its device enrolled.
		before := token.DeepCopy()
		token.Status.Phase = mdmv1alpha1.TokenDone
		Expect(k8sClient.Status().Patch(ctx, token, client.MergeFrom(before))).To(Succeed())
		Eventually(secretGone(ctx, ns, secret.Name)).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
			g.Expect(token.Status.Phase).To(Equal(mdmv1alpha1.TokenDone))
			g.Expect(meta.FindStatusCondition(token.Status.Conditions, mdmv1alpha1.ConditionReady).Reason).To(Equal(mdmv1alpha1.TokenReasonConsumed))
		}).Should(Succeed())
		Expect(kstatusOf(token)).To(Equal(status.CurrentStatus), "a spent one-time token did its job")
	})

	It("settles a one-time token a gateway claimed and never finished", func() {
		for _, enrolled := range []bool{false, true} {
			name := map[bool]string{false: "abandoned", true: "unrecorded"}[enrolled]
			token := &mdmv1alpha1.EnrollmentToken{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec:       mdmv1alpha1.EnrollmentTokenSpec{Platform: mdmv1alpha1.PlatformLinux},
			}
			Expect(k8sClient.Create(ctx, token)).To(Succeed())
			issued(ctx, token)
			if enrolled {
				// The Device enrolled; the gateway stopped before it marked
				// the token spent.
				d := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "laptop"},
					Spec: mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformLinux}}
				Expect(k8sClient.Create(ctx, d)).To(Succeed())
				before := d.DeepCopy()
				now := metav1.Now()
				d.Status.Phase, d.Status.EnrollmentToken, d.Status.EnrolledAt = mdmv1alpha1.DeviceEnrolled, name, &now
				Expect(k8sClient.Status().Patch(ctx, d, client.MergeFrom(before))).To(Succeed())
			}
			// Claimed longer ago than the claim timeout.
			before := token.DeepCopy()
			claimed := metav1.NewTime(time.Now().Add(-mdmv1alpha1.ClaimTimeout - time.Second))
			token.Status.Phase, token.Status.ClaimedAt = mdmv1alpha1.TokenProcessing, &claimed
			Expect(k8sClient.Status().Patch(ctx, token, client.MergeFrom(before))).To(Succeed())

			want := map[bool]mdmv1alpha1.EnrollmentTokenPhase{false: mdmv1alpha1.TokenPending, true: mdmv1alpha1.TokenDone}[enrolled]
			Eventually(func(g Gomega) mdmv1alpha1.EnrollmentTokenPhase {
				g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
				return token.Status.Phase
			}).Should(Equal(want), name)
			if enrolled {
				Eventually(func(g Gomega) {
					g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
					g.Expect(token.Status.EnrollmentCount).To(Equal(int32(1)), "counted from the Device")
					g.Expect(token.Status.LastEnrollmentAt).NotTo(BeNil())
				}).Should(Succeed())
			}
		}
	})

	It("replaces a Secret deleted behind its back with a new value", func() {
		token := &mdmv1alpha1.EnrollmentToken{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "linux"}, token)).To(Succeed())
		secret := issued(ctx, token)
		oldHash := token.Status.TokenHash
		Expect(k8sClient.Delete(ctx, secret)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
			g.Expect(token.Status.TokenHash).NotTo(Equal(oldHash))
			fresh := &corev1.Secret{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(secret), fresh)).To(Succeed())
			g.Expect(enrollment.Hash(string(fresh.Data[mdmv1alpha1.TokenSecretKey]))).To(Equal(token.Status.TokenHash))
			issuedValues = append(issuedValues, string(fresh.Data[mdmv1alpha1.TokenSecretKey]))
		}).Should(Succeed())
	})

	It("stalls instead of taking over a Secret it does not own", func() {
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken-token"},
			StringData: map[string]string{"token": "someone else's"},
		})).To(Succeed())
		token := &mdmv1alpha1.EnrollmentToken{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken"},
			Spec:       mdmv1alpha1.EnrollmentTokenSpec{Platform: mdmv1alpha1.PlatformLinux},
		}
		Expect(k8sClient.Create(ctx, token)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)).To(Succeed())
			stalled := meta.FindStatusCondition(token.Status.Conditions, mdmv1alpha1.ConditionStalled)
			g.Expect(stalled).NotTo(BeNil())
			g.Expect(stalled.Message).To(ContainSubstring(`Secret "taken-token" exists and is not owned by this EnrollmentToken`))
		}).Should(Succeed())
		untouched := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "taken-token"}, untouched)).To(Succeed())
		Expect(string(untouched.Data["token"])).To(Equal("someone else's"))
	})

	It("revokes on kubectl delete through its finalizer, then lets go", func() {
		token := &mdmv1alpha1.EnrollmentToken{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "phones"}, token)).To(Succeed())
		secret := issued(ctx, token)
		Expect(k8sClient.Delete(ctx, token)).To(Succeed())
		Eventually(secretGone(ctx, ns, secret.Name)).Should(Succeed())
		Eventually(func(g Gomega) {
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(token), token)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "token still exists: %v", err)
		}).Should(Succeed())
	})

	It("records an event for each transition", func() {
		Eventually(func(g Gomega) {
			list := &eventsv1.EventList{}
			g.Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			reasons := map[string]bool{}
			for _, e := range list.Items {
				if e.Regarding.Kind == "EnrollmentToken" {
					reasons[e.Regarding.Name+"/"+e.Reason] = true
				}
			}
			g.Expect(reasons).To(SatisfyAll(
				HaveKey("phones/"+mdmv1alpha1.TokenReasonIssued),
				HaveKey("short/"+mdmv1alpha1.TokenReasonExpired),
				HaveKey("revoke-me/"+mdmv1alpha1.TokenReasonRevoked),
				HaveKey("once/"+mdmv1alpha1.TokenReasonConsumed),
				HaveKey("phones/"+mdmv1alpha1.TokenReasonDeleting),
			))
		}).Should(Succeed())
	})

	It("never shows a token value in a status, an event or a log line", func() {
		Expect(len(issuedValues)).To(BeNumerically(">=", 6))
		tokens := &mdmv1alpha1.EnrollmentTokenList{}
		Expect(k8sClient.List(ctx, tokens, client.InNamespace(ns))).To(Succeed())
		statuses, err := json.Marshal(tokens)
		Expect(err).NotTo(HaveOccurred())
		events := &eventsv1.EventList{}
		Expect(k8sClient.List(ctx, events, client.InNamespace(ns))).To(Succeed())
		eventText, err := json.Marshal(events)
		Expect(err).NotTo(HaveOccurred())
		logText := logs.String()
		Expect(logText).To(ContainSubstring("EnrollmentToken transition"), "the log capture must be working")
		for _, v := range issuedValues {
			Expect(v).To(HavePrefix(enrollment.TokenPrefix))
			Expect(string(statuses)).NotTo(ContainSubstring(v))
			Expect(string(eventText)).NotTo(ContainSubstring(v))
			Expect(logText).NotTo(ContainSubstring(v))
			// Nor its random part alone, in case something re-encodes it.
			Expect(logText).NotTo(ContainSubstring(strings.TrimPrefix(v, enrollment.TokenPrefix)))
		}
		fmt.Fprintf(GinkgoWriter, "checked %d token values against %d bytes of logs\n", len(issuedValues), len(logText))
	})
})
