package controllers

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/conditions"
	"github.com/kubemdm/kubemdm/internal/configset"
)

// keptRevisions is how many ControllerRevisions a Configuration keeps: the
// current one and the one a rollout may still hand out, and one more.
const keptRevisions = 3

// +kubebuilder:rbac:groups=apps,resources=controllerrevisions,verbs=get;list;watch;create;delete

// snapshot keeps the settings of the current revision in a
// ControllerRevision, so that a later staged rollout can still hand them to
// the devices it has yet to reach, and deletes the oldest beyond
// keptRevisions. It runs after startRollout, so the rollout's previous
// revision is protected. Secret values are not copied: they stay in their Secret.
func (r *ConfigurationReconciler) snapshot(ctx context.Context, cfg *mdmv1alpha1.Configuration) error {
	list := &appsv1.ControllerRevisionList{}
	if err := r.Payloads.List(ctx, list, client.InNamespace(cfg.Namespace), client.MatchingLabels{configset.LabelConfiguration: cfg.Name}); err != nil {
		return fmt.Errorf("listing the revisions of %s: %w", cfg.Name, err)
	}
	name := configset.RevisionName(cfg.Name, cfg.Status.Revision)
	var last int64
	have := false
	for _, cr := range list.Items {
		last = max(last, cr.Revision)
		have = have || cr.Name == name
	}
	if !have {
		data, err := json.Marshal(cfg.Spec.Settings)
		if err != nil {
			return err
		}
		cr := &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Namespace: cfg.Namespace, Name: name, Labels: map[string]string{
				configset.LabelConfiguration: cfg.Name, mdmv1alpha1.LabelManagedBy: mdmv1alpha1.ManagedByValue}},
			Data:     runtime.RawExtension{Raw: data},
			Revision: last + 1,
		}
		if err := controllerutil.SetControllerReference(cfg, cr, r.Scheme()); err != nil {
			return err
		}
		if err := r.Create(ctx, cr); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("keeping revision %s: %w", cfg.Status.Revision, err)
		}
		list.Items = append(list.Items, *cr)
	}
	protect := []string{name}
	if cfg.Status.Rollout != nil {
		protect = append(protect, configset.RevisionName(cfg.Name, cfg.Status.Rollout.PreviousRevision))
	}
	for _, cr := range staleRevisions(list.Items, protect) {
		if err := r.Delete(ctx, &cr); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting revision %s: %w", cr.Name, err)
		}
	}
	return nil
}

// staleRevisions are the revisions beyond the keptRevisions newest, save
// the protected ones: the current revision, and the previous one a rollout
// still hands to the devices it has yet to reach, however old it is (a
// revert makes an old revision current again without a new number).
func staleRevisions(items []appsv1.ControllerRevision, protect []string) []appsv1.ControllerRevision {
	items = slices.Clone(items)
	slices.SortFunc(items, func(a, b appsv1.ControllerRevision) int { return cmp.Compare(b.Revision, a.Revision) })
	var stale []appsv1.ControllerRevision
	for _, cr := range items[min(keptRevisions, len(items)):] {
		if !slices.Contains(protect, cr.Name) {
			stale = append(stale, cr)
		}
	}
	return stale
}

// startRollout begins staging a new revision when the Configuration asks
// for it and devices hold an earlier one.
func startRollout(cfg *mdmv1alpha1.Configuration, previous string) {
	if cfg.Spec.Rollout == nil || previous == "" || previous == cfg.Status.Revision {
		return
	}
	if r := cfg.Status.Rollout; r != nil {
		// A rollout under way: the devices it did not reach still hold
		// its previous revision, and keep it.
		previous = r.PreviousRevision
	}
	cfg.Status.Rollout = &mdmv1alpha1.RolloutStatus{Revision: cfg.Status.Revision, PreviousRevision: previous}
}

// batchSize is how many devices may be taking the revision, or have failed
// it, at a time.
func batchSize(spec *mdmv1alpha1.RolloutSpec, targeted int) int {
	max := intstr.FromInt32(1)
	if spec != nil && spec.MaxUnavailable != nil {
		max = *spec.MaxUnavailable
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&max, targeted, true)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// rolloutDevice is a targeted device in rollout order.
type rolloutDevice struct {
	hash      string
	row       *mdmv1alpha1.DeviceConfigurationStatus
	connected bool
}

// progressRollout admits the next batch once every connected device of the
// last one reported the revision, pauses while failures use up
// maxUnavailable, and ends the rollout once every device is admitted. An
// offline device does not hold the rollout back: it takes the revision
// when it connects.
func progressRollout(cfg *mdmv1alpha1.Configuration, devices []mdmv1alpha1.Device) {
	ro := cfg.Status.Rollout
	if ro == nil {
		conditions.Remove(cfg, mdmv1alpha1.ConfigurationConditionRollingOut)
		return
	}
	wasBelow := ro.AdmittedBelow
	var order []rolloutDevice
	for i := range devices {
		d := &devices[i]
		if !d.Status.Phase.Managed() || d.Status.Phase == mdmv1alpha1.DeviceRegistered || excludes(d, cfg.Name) ||
			(len(cfg.Spec.Platforms) > 0 && !slices.Contains(cfg.Spec.Platforms, d.Spec.Platform)) {
			continue
		}
		rd := rolloutDevice{hash: configset.RolloutHash(d.UID, ro.Revision), connected: conditions.IsTrue(d, mdmv1alpha1.DeviceConditionConnected)}
		for j := range d.Status.Configurations {
			if c := &d.Status.Configurations[j]; c.Name == cfg.Name && c.Revision == ro.Revision {
				rd.row = c
			}
		}
		order = append(order, rd)
	}
	slices.SortFunc(order, func(a, b rolloutDevice) int { return strings.Compare(a.hash, b.hash) })
	admitted, inflight := 0, 0
	ro.Updated, ro.Failed = 0, 0
	// tally counts an admitted device as updated, failed, or still taking
	// the revision.
	tally := func(d rolloutDevice) {
		switch {
		case d.row != nil && d.row.State == mdmv1alpha1.ConfigurationFailed:
			ro.Failed++
		case d.row != nil && d.row.State != mdmv1alpha1.ConfigurationPending:
			ro.Updated++
		case d.connected:
			inflight++
		}
	}
	for _, d := range order {
		if d.hash < ro.AdmittedBelow {
			admitted++
			tally(d)
		}
	}
	batch := batchSize(cfg.Spec.Rollout, len(order))
	room := batch - int(ro.Failed) - inflight
	switch {
	case cfg.Spec.Rollout == nil:
		// No longer staged: every device takes the revision now.
		admitted, ro.AdmittedBelow = len(order), configset.AdmitAll
	case ro.Failed >= int32(batch):
		conditions.MarkStalled(cfg, mdmv1alpha1.ConfigurationReasonRolloutPaused, fmt.Sprintf(
			"Rollout of revision %s paused: %d devices failed it, maxUnavailable is %d; fix the configuration or the devices (see their status.configurations)",
			ro.Revision, ro.Failed, batch))
	case cfg.Spec.Rollout.Pause:
		conditions.Set(cfg, mdmv1alpha1.ConfigurationConditionRollingOut, metav1.ConditionFalse, mdmv1alpha1.ConfigurationReasonPausedBySpec,
			fmt.Sprintf("spec.rollout.pause holds revision %s at %d of %d devices", ro.Revision, admitted, len(order)))
	case inflight == 0 && room > 0 && admitted < len(order):
		next := min(admitted+room, len(order))
		// The batch admitted now is taking the revision: the last one
		// must report it before the rollout can end.
		for _, d := range order[admitted:next] {
			tally(d)
		}
		admitted, ro.AdmittedBelow = next, configset.AdmitAll
		if next < len(order) {
			ro.AdmittedBelow = order[next].hash
		}
	}
	if admitted >= len(order) {
		// Every device is admitted, or there is none to stage.
		ro.AdmittedBelow = configset.AdmitAll
	}
	if ro.AdmittedBelow != wasBelow || ro.AdmittedTime == nil {
		now := metav1.Now()
		ro.AdmittedTime = &now
	}
	ro.Admitted = int32(admitted)
	ro.Pending = int32(len(order)) - ro.Updated - ro.Failed
	if cfg.Spec.Rollout == nil || (ro.AdmittedBelow == configset.AdmitAll && inflight == 0 && int(ro.Failed) < batch) {
		// Every device may take the revision, and the last batch did not
		// fail it: nothing is staged any more. The revision is due on every
		// device from the last admission on.
		if ro.AdmittedTime != nil && (cfg.Status.RevisionTime == nil || cfg.Status.RevisionTime.Before(ro.AdmittedTime)) {
			cfg.Status.RevisionTime = ro.AdmittedTime
		}
		cfg.Status.Rollout = nil
		conditions.Remove(cfg, mdmv1alpha1.ConfigurationConditionRollingOut)
		return
	}
	if conditions.IsTrue(cfg, mdmv1alpha1.ConditionStalled) || (cfg.Spec.Rollout != nil && cfg.Spec.Rollout.Pause) {
		return
	}
	msg := fmt.Sprintf("Revision %s: %d of %d devices admitted, %d updated, %d failed", ro.Revision, admitted, len(order), ro.Updated, ro.Failed)
	conditions.Set(cfg, mdmv1alpha1.ConfigurationConditionRollingOut, metav1.ConditionTrue, mdmv1alpha1.ConfigurationReasonRollingOut, msg)
	conditions.MarkReconciling(cfg, mdmv1alpha1.ConfigurationReasonRollingOut, msg)
}

func excludes(d *mdmv1alpha1.Device, name string) bool {
	return slices.ContainsFunc(d.Spec.Configurations, func(a mdmv1alpha1.ConfigurationAssignment) bool {
		return a.Name == name && a.Excluded
	})
}
