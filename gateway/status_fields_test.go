package gateway

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func TestOwnsLegacyReport(t *testing.T) {
	entry := func(manager, subresource, fields string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationApply, Subresource: subresource,
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}}
	}
	for _, tc := range []struct {
		name    string
		entries []metav1.ManagedFieldsEntry
		want    bool
	}{
		{"no entry", nil, false},
		{"owns a fact", []metav1.ManagedFieldsEntry{entry(legacyReportManager, "status", `{"f:status":{"f:lostMode":{".":{}}}}`)}, true},
		{"released: an entry owning nothing", []metav1.ManagedFieldsEntry{entry(legacyReportManager, "status", `{"f:status":{}}`)}, false},
		{"another manager", []metav1.ManagedFieldsEntry{entry(statusManager, "status", `{"f:status":{"f:lostMode":{".":{}}}}`)}, false},
		{"unreadable fields are taken as owned", []metav1.ManagedFieldsEntry{entry(legacyReportManager, "status", `{`)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{ManagedFields: tc.entries}}
			if got := ownsLegacyReport(d); got != tc.want {
				t.Errorf("ownsLegacyReport = %v, want %v", got, tc.want)
			}
		})
	}
}
