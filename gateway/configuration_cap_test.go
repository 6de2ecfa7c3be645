package gateway

import (
	"fmt"
	"testing"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// TestCapSettings: a row never holds more settings than the schema takes,
// and the last one it keeps says how many were left out.
func TestCapSettings(t *testing.T) {
	settings := func(n int) []mdmv1alpha1.SettingStatus {
		out := make([]mdmv1alpha1.SettingStatus, n)
		for i := range out {
			out[i] = mdmv1alpha1.SettingStatus{Path: fmt.Sprintf("files[/etc/f%d]", i), Reason: "Failed"}
		}
		return out
	}
	for _, n := range []int{0, 1, mdmv1alpha1.MaxSettingStatuses} {
		if got := capSettings(settings(n)); len(got) != n || (n > 0 && got[n-1].Path != fmt.Sprintf("files[/etc/f%d]", n-1)) {
			t.Errorf("%d settings came back as %d: %+v", n, len(got), got)
		}
	}
	for _, many := range []int{mdmv1alpha1.MaxSettingStatuses + 1, 40} {
		got := capSettings(settings(many))
		if len(got) != mdmv1alpha1.MaxSettingStatuses {
			t.Fatalf("%d settings: %d kept, want %d", many, len(got), mdmv1alpha1.MaxSettingStatuses)
		}
		last := got[len(got)-1]
		if want := fmt.Sprintf("and %d more settings", many-mdmv1alpha1.MaxSettingStatuses+1); last.Path != "…" || last.Message != want || last.Reason != "Failed" {
			t.Errorf("%d settings: last one %+v, want path … and message %q", many, last, want)
		}
	}
}
