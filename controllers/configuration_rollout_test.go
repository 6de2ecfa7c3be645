package controllers

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestStaleRevisions: the newest revisions are kept, and so are the
// current one and the one a rollout still hands out, however old.
func TestStaleRevisions(t *testing.T) {
	revisions := func(names ...string) []appsv1.ControllerRevision {
		var out []appsv1.ControllerRevision
		for i, n := range names {
			out = append(out, appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: n}, Revision: int64(i + 1)})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		items   []appsv1.ControllerRevision
		protect []string
		want    []string
	}{
		{"fewer than kept", revisions("a", "b"), []string{"b"}, nil},
		{"the oldest goes", revisions("a", "b", "c", "d"), []string{"d", "c"}, []string{"a"}},
		// Reverted to a, then changed to d: devices the rollout of d has
		// not reached still get a.
		{"a rollout's previous revision after a revert", revisions("a", "b", "c", "d"), []string{"d", "a"}, nil},
		{"a reverted current revision", revisions("a", "b", "c", "d", "e"), []string{"a", "e"}, []string{"b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, cr := range staleRevisions(tc.items, tc.protect) {
				got = append(got, cr.Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("stale %v, want %v", got, tc.want)
			}
		})
	}
}
