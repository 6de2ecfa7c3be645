package gateway

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// statusManager is the one field manager of everything the gateway writes
// to a Device's status, the same on every replica: the connection
// (lastSeen, connection and the Connected condition) and the facts the agent
// reports. One manager, so that a stream opening and the agent's first
// report go out as one write. Server-side apply removes a field its manager
// stops sending, so every write sends the whole set: the part it changes,
// and the rest as the Device it read has it, guarded by that read's
// resourceVersion so that a copied value never undoes a newer write.
//
// The name is the one the connection had when the facts had a manager of
// their own (legacyReportManager): a field that manager alone still owns on
// an older Device is released by the first report written since.
const statusManager = "kubemdm-gateway-presence"

// legacyReportManager owned the reported facts before statusManager did.
const legacyReportManager = "kubemdm-gateway-report"

// Status fields by who decides them: the connection is the presence
// writer's, the facts the report's.
var (
	connectionFields = []string{"conditions", "lastSeen", "connection"}
	reportFields     = []string{"deviceInfo", "security", "kiosk", "lostMode", "configurations", "certificates", "appliedConfigGeneration", "reassignment"}
)

// gatewayStatus is what statusManager applies to d: the fields of part
// named by fields (absent from part: removed), and the rest of the gateway's
// fields as d has them. Of the conditions, the gateway's is Connected alone.
func gatewayStatus(d *mdmv1alpha1.Device, part map[string]any, fields ...[]string) (map[string]any, error) {
	have, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&d.Status)
	if err != nil {
		return nil, fmt.Errorf("converting the Device's status: %w", err)
	}
	out := map[string]any{}
	for _, k := range append(connectionFields[1:], reportFields...) {
		if v, ok := have[k]; ok {
			out[k] = v
		}
	}
	if c := meta.FindStatusCondition(d.Status.Conditions, mdmv1alpha1.DeviceConditionConnected); c != nil {
		cond, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
		if err != nil {
			return nil, fmt.Errorf("converting the Connected condition: %w", err)
		}
		out["conditions"] = []any{cond}
	}
	for _, set := range fields {
		for _, k := range set {
			delete(out, k)
			if v, ok := part[k]; ok {
				out[k] = v
			}
		}
	}
	return out, nil
}

// ownsLegacyReport reports whether legacyReportManager still owns status
// fields of d. Released, it keeps an entry that owns none.
func ownsLegacyReport(d *mdmv1alpha1.Device) bool {
	for _, m := range d.ManagedFields {
		if m.Manager != legacyReportManager || m.Subresource != "status" || m.FieldsV1 == nil {
			continue
		}
		var owned struct {
			Status map[string]any `json:"f:status"`
		}
		if json.Unmarshal(m.FieldsV1.Raw, &owned) != nil || len(owned.Status) > 0 {
			return true
		}
	}
	return false
}
