package controllers

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/conditions"
	"github.com/kubemdm/kubemdm/internal/configset"
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

// TestRolloutWaitsForItsLastBatch drives a staged rollout the way the
// controller and the devices do, one reconcile after another: whichever
// device fails the revision, and however late it is admitted, the rollout
// pauses on it instead of ending.
func TestRolloutWaitsForItsLastBatch(t *testing.T) {
	const devices, revision = 6, "r2"
	order := make([]mdmv1alpha1.Device, devices)
	for i := range order {
		order[i] = mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("d%d", i), UID: types.UID(fmt.Sprintf("uid-%d", i))},
			Status: mdmv1alpha1.DeviceStatus{Phase: mdmv1alpha1.DeviceEnrolled,
				Conditions: []metav1.Condition{{Type: mdmv1alpha1.DeviceConditionConnected, Status: metav1.ConditionTrue}}}}
	}
	slices.SortFunc(order, func(a, b mdmv1alpha1.Device) int {
		return strings.Compare(configset.RolloutHash(a.UID, revision), configset.RolloutHash(b.UID, revision))
	})
	for failing := range devices {
		t.Run(fmt.Sprintf("failing device %d of %d", failing+1, devices), func(t *testing.T) {
			fleet := slices.Clone(order)
			for i := range fleet {
				fleet[i].Status.Configurations = nil
			}
			cfg := &mdmv1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Name: "app"},
				Spec:   mdmv1alpha1.ConfigurationSpec{Rollout: &mdmv1alpha1.RolloutSpec{}},
				Status: mdmv1alpha1.ConfigurationStatus{Revision: revision}}
			startRollout(cfg, "r1")
			for step := 0; step < 2*devices && cfg.Status.Rollout != nil && !conditions.IsTrue(cfg, mdmv1alpha1.ConditionStalled); step++ {
				progressRollout(cfg, fleet)
				// Each admitted device reports the revision before the
				// next reconcile.
				for i := range fleet {
					d := &fleet[i]
					if !configset.Admitted(cfg, d.UID) || len(d.Status.Configurations) > 0 {
						continue
					}
					state := mdmv1alpha1.ConfigurationApplied
					if i == failing {
						state = mdmv1alpha1.ConfigurationFailed
					}
					d.Status.Configurations = []mdmv1alpha1.DeviceConfigurationStatus{{Name: "app", Revision: revision, State: state}}
				}
			}
			if cfg.Status.Rollout == nil {
				t.Fatalf("the rollout ended with device %d failing the revision", failing+1)
			}
			if !conditions.IsTrue(cfg, mdmv1alpha1.ConditionStalled) {
				t.Fatalf("the rollout did not pause: %+v", cfg.Status.Rollout)
			}
			if ro := cfg.Status.Rollout; ro.Failed != 1 || ro.Updated != int32(failing) || ro.Admitted != int32(failing+1) {
				t.Errorf("rollout %+v, want %d updated, 1 failed, %d admitted", ro, failing, failing+1)
			}
		})
	}
}

func TestBatchSize(t *testing.T) {
	pct := func(s string) *mdmv1alpha1.RolloutSpec {
		v := intstr.FromString(s)
		return &mdmv1alpha1.RolloutSpec{MaxUnavailable: &v}
	}
	count := func(n int32) *mdmv1alpha1.RolloutSpec {
		v := intstr.FromInt32(n)
		return &mdmv1alpha1.RolloutSpec{MaxUnavailable: &v}
	}
	for _, tc := range []struct {
		name     string
		spec     *mdmv1alpha1.RolloutSpec
		targeted int
		want     int
	}{
		{"unset is one device at a time", &mdmv1alpha1.RolloutSpec{}, 100, 1},
		{"a count", count(5), 100, 5},
		{"a count of zero still moves", count(0), 100, 1},
		{"a percent", pct("25%"), 100, 25},
		{"a percent rounds up, so a small fleet moves", pct("10%"), 5, 1},
		{"a percent rounds up", pct("10%"), 15, 2},
		{"a malformed percent falls back to one", pct("ten"), 100, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := batchSize(tc.spec, tc.targeted); got != tc.want {
				t.Errorf("batchSize = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestRolloutPausedBySpec: spec.rollout.pause holds the devices admitted so
// far, and clearing it admits the next batch.
func TestRolloutPausedBySpec(t *testing.T) {
	fleet := make([]mdmv1alpha1.Device, 4)
	for i := range fleet {
		fleet[i] = mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("d%d", i), UID: types.UID(fmt.Sprintf("uid-%d", i))},
			Status: mdmv1alpha1.DeviceStatus{Phase: mdmv1alpha1.DeviceEnrolled,
				Conditions: []metav1.Condition{{Type: mdmv1alpha1.DeviceConditionConnected, Status: metav1.ConditionTrue}}}}
	}
	cfg := &mdmv1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec:   mdmv1alpha1.ConfigurationSpec{Rollout: &mdmv1alpha1.RolloutSpec{}},
		Status: mdmv1alpha1.ConfigurationStatus{Revision: "r2"}}
	startRollout(cfg, "r1")
	progressRollout(cfg, fleet)
	if got := cfg.Status.Rollout.Admitted; got != 1 {
		t.Fatalf("admitted %d devices in the first batch, want 1", got)
	}
	applyAdmitted := func() {
		for i := range fleet {
			if configset.Admitted(cfg, fleet[i].UID) {
				fleet[i].Status.Configurations = []mdmv1alpha1.DeviceConfigurationStatus{{Name: "app", Revision: "r2", State: mdmv1alpha1.ConfigurationApplied}}
			}
		}
	}
	applyAdmitted()
	cfg.Spec.Rollout.Pause = true
	progressRollout(cfg, fleet)
	if ro := cfg.Status.Rollout; ro == nil || ro.Admitted != 1 || ro.Updated != 1 {
		t.Fatalf("a paused rollout moved on: %+v", ro)
	}
	if c := meta.FindStatusCondition(cfg.Status.Conditions, mdmv1alpha1.ConfigurationConditionRollingOut); c == nil || c.Reason != mdmv1alpha1.ConfigurationReasonPausedBySpec {
		t.Errorf("RollingOut condition %+v, want reason %s", c, mdmv1alpha1.ConfigurationReasonPausedBySpec)
	}
	cfg.Spec.Rollout.Pause = false
	progressRollout(cfg, fleet)
	if ro := cfg.Status.Rollout; ro == nil || ro.Admitted != 2 {
		t.Fatalf("clearing the pause did not admit the next batch: %+v", ro)
	}
}
