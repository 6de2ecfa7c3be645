package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func TestComplianceRequested(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 30, 500_000_000, time.UTC)
	evaluated := func(at time.Time) *mdmv1alpha1.ComplianceStatus {
		stamp := metav1.NewTime(at)
		return &mdmv1alpha1.ComplianceStatus{State: mdmv1alpha1.ComplianceCompliant, LastEvaluated: &stamp}
	}
	for _, tc := range []struct {
		name       string
		annotation string
		status     *mdmv1alpha1.ComplianceStatus
		want       bool
	}{
		{"no request", "", evaluated(now.Add(-time.Hour)), false},
		{"a request after the last evaluation", "2026-11-23T12:00:10Z", evaluated(now.Add(-time.Minute)), true},
		{"a request the last evaluation answered", "2026-11-23T12:00:10Z", evaluated(now.Add(-10 * time.Second)), false},
		{"a request in the same second as the evaluation", "2026-11-23T12:00:30Z", evaluated(now.Truncate(time.Second)), false},
		{"never evaluated", "2026-11-23T12:00:10Z", nil, true},
		// A request dated in the future is answered by an evaluation now,
		// not by one on every reconcile until then.
		{"a request from the future, answered now", "2027-01-01T00:00:00Z", evaluated(now.Truncate(time.Second)), false},
		{"a request from the future, not yet answered", "2027-01-01T00:00:00Z", evaluated(now.Add(-time.Minute)), true},
		{"a malformed request", "yesterday", evaluated(now.Add(-time.Hour)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &mdmv1alpha1.Device{Status: mdmv1alpha1.DeviceStatus{Compliance: tc.status}}
			if tc.annotation != "" {
				d.Annotations = map[string]string{mdmv1alpha1.AnnotationComplianceRequested: tc.annotation}
			}
			if got := complianceRequested(d, now); got != tc.want {
				t.Errorf("complianceRequested = %v, want %v", got, tc.want)
			}
		})
	}
}
