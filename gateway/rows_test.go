package gateway

import (
	"testing"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func TestRowOf(t *testing.T) {
	rows := func(names ...string) *mdmv1alpha1.DeviceAction {
		a := &mdmv1alpha1.DeviceAction{}
		for _, n := range names {
			a.Status.Devices = append(a.Status.Devices, mdmv1alpha1.DeviceResult{Name: n})
		}
		return a
	}
	for _, tc := range []struct {
		name   string
		action *mdmv1alpha1.DeviceAction
		device string
		want   int
	}{
		{"sorted, first", rows("a", "b", "c"), "a", 0},
		{"sorted, last", rows("a", "b", "c"), "c", 2},
		{"sorted, missing", rows("a", "b", "c"), "bb", -1},
		{"unsorted", rows("c", "a", "b"), "b", 2},
		{"unsorted, missing", rows("c", "a", "b"), "d", -1},
		{"empty", rows(), "a", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, row := rowOf(tc.action, tc.device)
			if i != tc.want || (i >= 0 && row.Name != tc.device) || (i < 0 && row != nil) {
				t.Errorf("rowOf(%q) = %d, %v", tc.device, i, row)
			}
		})
	}
}
