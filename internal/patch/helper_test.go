package patch

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/conditions"
)

// TestConditionsRemovedAndSetAgainAreNoChange: a reconcile that settles an
// object, then finds it still rolling out, leaves its status as it read it,
// so Patch has nothing to write; a real transition gets a new time.
func TestConditionsRemovedAndSetAgainAreNoChange(t *testing.T) {
	read := &mdmv1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
	conditions.MarkReconciling(read, "RollingOut", "Revision r2: 1 of 4 devices admitted")
	hourAgo := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
	for i := range read.Status.Conditions {
		read.Status.Conditions[i].LastTransitionTime = hourAgo
	}

	same := read.DeepCopy()
	conditions.MarkReady(same, "Revised", "Revision r2 goes to the targeted devices")
	conditions.MarkReconciling(same, "RollingOut", "Revision r2: 1 of 4 devices admitted")
	keepTransitionTimes(read, same)
	if body, err := statusPatch(read, same); err != nil || body != nil {
		t.Errorf("status patch %s, %v after conditions came back as they were", body, err)
	}

	settled := read.DeepCopy()
	conditions.MarkReady(settled, "Revised", "Revision r2 goes to the targeted devices")
	keepTransitionTimes(read, settled)
	if c := meta.FindStatusCondition(settled.Status.Conditions, mdmv1alpha1.ConditionReady); c == nil || c.LastTransitionTime.Equal(&hourAgo) {
		t.Errorf("Ready turned True kept the old transition time: %+v", c)
	}
}
