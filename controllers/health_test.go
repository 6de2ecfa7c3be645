package controllers

import (
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/argohealth"
	"github.com/kubemdm/kubemdm/internal/conditions"
	"github.com/kubemdm/kubemdm/internal/configset"
)

// TestHealthPerPhase is the health rule of every phase of every kind, as
// the README's GitOps table states it. Each object is settled by the
// controllers' own code, then read by kstatus (kubectl wait, Flux) and by
// the Argo CD health script, which must agree.
func TestHealthPerPhase(t *testing.T) {
	now := time.Now()
	expires := metav1.NewTime(now.Add(time.Hour))
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: "x", Namespace: "default", Generation: 1}
	}
	token := func(phase mdmv1alpha1.EnrollmentTokenPhase, settle func(*mdmv1alpha1.EnrollmentToken)) any {
		tk := &mdmv1alpha1.EnrollmentToken{TypeMeta: metav1.TypeMeta{Kind: "EnrollmentToken"}, ObjectMeta: meta()}
		tk.Status.Phase, tk.Status.ExpiresAt, tk.Status.ObservedGeneration = phase, &expires, 1
		settle(tk)
		return tk
	}
	r := &DeviceReconciler{}
	device := func(phase mdmv1alpha1.DevicePhase, applied int64, connected bool, failed bool) any {
		d := &mdmv1alpha1.Device{TypeMeta: metav1.TypeMeta{Kind: "Device"}, ObjectMeta: meta()}
		d.Status.Phase, d.Status.AppliedConfigGeneration, d.Status.ObservedGeneration = phase, applied, 1
		if connected {
			conditions.Set(d, mdmv1alpha1.DeviceConditionConnected, metav1.ConditionTrue, "StreamOpen", "")
		}
		if failed {
			d.Status.Configurations = []mdmv1alpha1.DeviceConfigurationStatus{{Name: "wifi", State: mdmv1alpha1.ConfigurationFailed}}
		}
		r.settle(d, nil, now)
		return d
	}
	action := func(phase mdmv1alpha1.ActionPhase) any {
		a := &mdmv1alpha1.DeviceAction{TypeMeta: metav1.TypeMeta{Kind: "DeviceAction"}, ObjectMeta: meta()}
		a.Status.Phase, a.Status.ObservedGeneration = phase, 1
		if phase.Finished() {
			settleFinishedAction(a, phase, "done")
		} else {
			conditions.MarkReconciling(a, "Running", "1 of 1 devices still to answer")
		}
		return a
	}
	configuration := func(err error) any {
		c := &mdmv1alpha1.Configuration{TypeMeta: metav1.TypeMeta{Kind: "Configuration"}, ObjectMeta: meta()}
		settleConfiguration(c, "c12b276d2cc81a970fc6", err)
		return c
	}
	rollout := func(failing bool) any {
		c := configuration(nil).(*mdmv1alpha1.Configuration)
		c.Spec.Rollout = &mdmv1alpha1.RolloutSpec{}
		c.Status.Rollout = &mdmv1alpha1.RolloutStatus{Revision: c.Status.Revision, PreviousRevision: "older"}
		d := mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{UID: "d1"}, Status: mdmv1alpha1.DeviceStatus{Phase: mdmv1alpha1.DeviceEnrolled}}
		conditions.Set(&d, mdmv1alpha1.DeviceConditionConnected, metav1.ConditionTrue, "StreamOpen", "")
		devices := []mdmv1alpha1.Device{d, *d.DeepCopy()}
		devices[1].UID = "d2"
		progressRollout(c, devices) // admits the first batch
		if failing {
			for i := range devices {
				devices[i].Status.Configurations = []mdmv1alpha1.DeviceConfigurationStatus{{Name: c.Name, Revision: c.Status.Revision, State: mdmv1alpha1.ConfigurationFailed}}
			}
			progressRollout(c, devices)
		}
		return c
	}
	waitingForWifi := func() any {
		tk := &mdmv1alpha1.EnrollmentToken{TypeMeta: metav1.TypeMeta{Kind: "EnrollmentToken"}, ObjectMeta: meta()}
		awaitWifiSecret(tk, &missingSecretError{name: "corp-wifi", key: "password"})
		return tk
	}
	tooManyTargets := func() any {
		a := &mdmv1alpha1.DeviceAction{TypeMeta: metav1.TypeMeta{Kind: "DeviceAction"}, ObjectMeta: meta()}
		failTooManyTargets(a, &tooManyTargetsError{n: mdmv1alpha1.MaxSelectorMatches + 1}, metav1.NewTime(now))
		return a
	}
	deletingToken := token(mdmv1alpha1.TokenPending, settleIssuedToken).(*mdmv1alpha1.EnrollmentToken)
	deletingToken.DeletionTimestamp = &metav1.Time{Time: now}
	unobserved := &mdmv1alpha1.Device{TypeMeta: metav1.TypeMeta{Kind: "Device"}, ObjectMeta: meta()}
	unobserved.Status.ObservedGeneration = -1 // the CRD's default for a new object
	deleting := device(mdmv1alpha1.DeviceEnrolled, 1, true, false).(*mdmv1alpha1.Device)
	deleting.DeletionTimestamp = &metav1.Time{Time: now}

	for _, tc := range []struct {
		name string
		obj  any
		want status.Status
	}{
		{"EnrollmentToken Pending", token(mdmv1alpha1.TokenPending, settleIssuedToken), status.CurrentStatus},
		{"EnrollmentToken Processing", token(mdmv1alpha1.TokenProcessing, settleIssuedToken), status.CurrentStatus},
		{"EnrollmentToken waiting for its Wi-Fi Secret", waitingForWifi(), status.InProgressStatus},
		{"EnrollmentToken being deleted", deletingToken, status.TerminatingStatus},
		{"EnrollmentToken Done", token(mdmv1alpha1.TokenDone, settleFinishedToken), status.CurrentStatus},
		{"EnrollmentToken Deleted (revoked)", token(mdmv1alpha1.TokenDeleted, settleFinishedToken), status.CurrentStatus},
		{"EnrollmentToken Expired", token(mdmv1alpha1.TokenExpired, settleFinishedToken), status.FailedStatus},
		{"Device not yet observed", unobserved, status.InProgressStatus},
		{"Device Registered", device(mdmv1alpha1.DeviceRegistered, 0, false, false), status.CurrentStatus},
		{"Device Enrolled, never connected", device(mdmv1alpha1.DeviceEnrolled, 0, false, false), status.CurrentStatus},
		{"Device Enrolled, connected, applying", device(mdmv1alpha1.DeviceEnrolled, 0, true, false), status.InProgressStatus},
		{"Device Enrolled, converged", device(mdmv1alpha1.DeviceEnrolled, 1, true, false), status.CurrentStatus},
		{"Device Enrolled, configuration failed", device(mdmv1alpha1.DeviceEnrolled, 1, true, true), status.FailedStatus},
		{"Device Disabled", device(mdmv1alpha1.DeviceDisabled, 1, false, false), status.CurrentStatus},
		{"Device WipePending", device(mdmv1alpha1.DeviceWipePending, 1, false, false), status.CurrentStatus},
		{"Device Wiped", device(mdmv1alpha1.DeviceWiped, 1, false, false), status.CurrentStatus},
		{"Device Retired", device(mdmv1alpha1.DeviceRetired, 1, false, false), status.CurrentStatus},
		{"Device Unenrolled", device(mdmv1alpha1.DeviceUnenrolled, 1, false, false), status.CurrentStatus},
		{"Device Deprovisioned", device(mdmv1alpha1.DeviceDeprovisioned, 1, false, false), status.CurrentStatus},
		{"Device being deleted", deleting, status.TerminatingStatus},
		{"DeviceAction Pending", action(mdmv1alpha1.ActionPending), status.InProgressStatus},
		{"DeviceAction Running", action(mdmv1alpha1.ActionRunning), status.InProgressStatus},
		{"DeviceAction Succeeded", action(mdmv1alpha1.ActionSucceeded), status.CurrentStatus},
		{"DeviceAction PartiallySucceeded", action(mdmv1alpha1.ActionPartiallySucceeded), status.FailedStatus},
		{"DeviceAction Failed", action(mdmv1alpha1.ActionFailed), status.FailedStatus},
		{"DeviceAction Expired", action(mdmv1alpha1.ActionExpired), status.FailedStatus},
		{"DeviceAction Canceled", action(mdmv1alpha1.ActionCanceled), status.FailedStatus},
		{"DeviceAction with more targets than it may hold", tooManyTargets(), status.FailedStatus},
		{"Configuration revised", configuration(nil), status.CurrentStatus},
		{"Configuration naming an unlabelled Secret", configuration(&configset.PayloadError{
			Ref: configset.Ref{Kind: "Secret", Name: "psk", Key: "k"}, NotAllowed: true}), status.FailedStatus},
		{"Configuration naming a missing ConfigMap", configuration(&configset.PayloadError{
			Ref: configset.Ref{Kind: "ConfigMap", Name: "motd", Key: "k"}}), status.FailedStatus},
		{"Configuration rolling out", rollout(false), status.InProgressStatus},
		{"Configuration rollout paused by failures", rollout(true), status.FailedStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := argohealth.ToMap(tc.obj)
			if err != nil {
				t.Fatal(err)
			}
			got, err := argohealth.Kstatus(obj)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("kstatus %s, want %s (conditions %v)", got, tc.want, obj["status"].(map[string]any)["conditions"])
			}
			argo, msg, err := argohealth.Evaluate(filepath.Join("..", "config", "argocd", "health.lua"), obj)
			if err != nil {
				t.Fatal(err)
			}
			if want := argohealth.ArgoFor(tc.want); argo != want {
				t.Errorf("Argo CD says %s (%s), kstatus %s means %s", argo, msg, tc.want, want)
			}
		})
	}
}
