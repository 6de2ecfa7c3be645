// Package conditions sets the kstatus-compatible conditions every kubemdm
// kind carries: Ready always, Reconciling and Stalled only while True, in the
// manner of fluxcd/pkg runtime/conditions.
package conditions

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// Setter is an object whose status holds conditions.
type Setter interface {
	GetGeneration() int64
	GetConditions() *[]metav1.Condition
}

func set(obj Setter, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(obj.GetConditions(), metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: obj.GetGeneration(),
	})
}

// Set sets any condition type.
func Set(obj Setter, typ string, status metav1.ConditionStatus, reason, message string) {
	set(obj, typ, status, reason, message)
}

// MarkReady settles the object: the controller has done its part and the
// object is where its spec asks, even when that is a finished one (a spent
// one-time token, a retired device). kstatus reads it as Current.
func MarkReady(obj Setter, reason, message string) {
	set(obj, mdmv1alpha1.ConditionReady, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(obj.GetConditions(), mdmv1alpha1.ConditionReconciling)
	meta.RemoveStatusCondition(obj.GetConditions(), mdmv1alpha1.ConditionStalled)
}

// MarkReconciling records progress that is still under way. kstatus reads it
// as InProgress.
func MarkReconciling(obj Setter, reason, message string) {
	set(obj, mdmv1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, message)
	set(obj, mdmv1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
	meta.RemoveStatusCondition(obj.GetConditions(), mdmv1alpha1.ConditionStalled)
}

// MarkStalled records that no progress is possible without a change: a
// failure, or an end that did not do what was asked (an expired token, a
// DeviceAction that failed on some devices). kstatus reads it as Failed.
//
// There is deliberately no "settled but not Ready" helper: Ready=False with
// neither Reconciling nor Stalled is InProgress to kstatus, so kubectl wait,
// Flux and Argo CD would wait forever on a finished object.
func MarkStalled(obj Setter, reason, message string) {
	set(obj, mdmv1alpha1.ConditionStalled, metav1.ConditionTrue, reason, message)
	set(obj, mdmv1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
	meta.RemoveStatusCondition(obj.GetConditions(), mdmv1alpha1.ConditionReconciling)
}

// IsTrue reports whether the condition is present and True.
func IsTrue(obj Setter, typ string) bool {
	return meta.IsStatusConditionTrue(*obj.GetConditions(), typ)
}

// Message is the message of a condition, or "".
func Message(obj Setter, typ string) string {
	if c := meta.FindStatusCondition(*obj.GetConditions(), typ); c != nil {
		return c.Message
	}
	return ""
}

// Remove drops a condition that no longer applies.
func Remove(obj Setter, typ string) {
	meta.RemoveStatusCondition(obj.GetConditions(), typ)
}
