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
		wait       time.Duration
	}{
		{"no request", "", evaluated(now.Add(-time.Hour)), false, 0},
		{"a request after the last evaluation", "2026-11-23T12:00:10Z", evaluated(now.Add(-time.Minute)), true, 0},
		{"a request the last evaluation answered", "2026-11-23T12:00:10Z", evaluated(now.Add(-10 * time.Second)), false, 0},
		{"a request in the same second as the evaluation", "2026-11-23T12:00:30Z", evaluated(now.Truncate(time.Second)), false, 0},
		{"never evaluated", "2026-11-23T12:00:10Z", nil, true, 0},
		// A request dated a little ahead (clock skew) falls due at its
		// time; one far ahead is ignored. Neither writes before.
		{"a request seconds ahead", "2026-11-23T12:00:50Z", evaluated(now.Add(-time.Minute)), false, 19500 * time.Millisecond},
		{"a request from next year", "2027-01-01T00:00:00Z", evaluated(now.Add(-time.Minute)), false, 0},
		{"a malformed request", "yesterday", evaluated(now.Add(-time.Hour)), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &mdmv1alpha1.Device{Status: mdmv1alpha1.DeviceStatus{Compliance: tc.status}}
			if tc.annotation != "" {
				d.Annotations = map[string]string{mdmv1alpha1.AnnotationComplianceRequested: tc.annotation}
			}
			if got, wait := complianceRequested(d, now); got != tc.want || wait != tc.wait {
				t.Errorf("complianceRequested = %v, %s; want %v, %s", got, wait, tc.want, tc.wait)
			}
		})
	}
}
