// Package argocd holds the Argo CD health script to kstatus on the shapes
// of object it may meet; controllers/health_test.go covers every phase.
package argocd

import (
	"testing"

	"github.com/kubemdm/kubemdm/internal/argohealth"
)

func object(kind string, generation, observed int64, conds ...map[string]any) map[string]any {
	list := []any{}
	for _, c := range conds {
		list = append(list, c)
	}
	return map[string]any{"kind": kind, "metadata": map[string]any{"generation": generation},
		"status": map[string]any{"observedGeneration": observed, "conditions": list}}
}

func cond(typ, status, reason string) map[string]any {
	return map[string]any{"type": typ, "status": status, "reason": reason, "message": typ + " " + reason}
}

func TestHealthAgreesWithKstatus(t *testing.T) {
	deleting := object("Device", 1, 1, cond("Ready", "True", "ConfigApplied"))
	deleting["metadata"].(map[string]any)["deletionTimestamp"] = "2026-11-23T10:00:00Z"
	for name, tc := range map[string]struct {
		obj  map[string]any
		want string
	}{
		"no status at all":         {map[string]any{"kind": "Device", "metadata": map[string]any{"generation": int64(1)}}, "Healthy"},
		"new, defaulted status":    {object("Device", 1, -1), "Progressing"},
		"stale generation":         {object("Device", 2, 1, cond("Ready", "True", "ConfigApplied")), "Progressing"},
		"ready":                    {object("Device", 2, 2, cond("Ready", "True", "ConfigApplied")), "Healthy"},
		"reconciling":              {object("Device", 1, 1, cond("Ready", "False", "ConfigPending"), cond("Reconciling", "True", "ConfigPending")), "Progressing"},
		"stalled":                  {object("Device", 1, 1, cond("Ready", "False", "ConfigurationFailed"), cond("Stalled", "True", "ConfigurationFailed")), "Degraded"},
		"stalled listed first":     {object("Device", 1, 1, cond("Stalled", "True", "X"), cond("Reconciling", "True", "Y")), "Degraded"},
		"not ready, nothing else":  {object("EnrollmentToken", 1, 1, cond("Ready", "False", "Something")), "Progressing"},
		"ready unknown":            {object("EnrollmentToken", 1, 1, cond("Ready", "Unknown", "Something")), "Progressing"},
		"other conditions only":    {object("Device", 1, 1, cond("Connected", "False", "StreamClosed")), "Healthy"},
		"being deleted":            {deleting, "Progressing"},
		"failed action":            {object("DeviceAction", 1, 1, cond("Ready", "False", "Failed"), cond("Stalled", "True", "Failed")), "Degraded"},
		"running action, unsorted": {object("DeviceAction", 1, 1, cond("Ready", "False", "Running"), cond("Reconciling", "True", "Running")), "Progressing"},
	} {
		ks, err := argohealth.Kstatus(tc.obj)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, msg, err := argohealth.Evaluate("health.lua", tc.obj)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != tc.want {
			t.Errorf("%s: Argo CD %s (%s), want %s", name, got, msg, tc.want)
		}
		if want := argohealth.ArgoFor(ks); got != want {
			t.Errorf("%s: Argo CD %s but kstatus %s, which is %s", name, got, ks, want)
		}
	}
}
