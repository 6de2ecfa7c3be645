package configset

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// AdmitAll as admittedBelow admits every device: it sorts after any hash.
const AdmitAll = "~"

// LabelConfiguration names the Configuration a ControllerRevision holds a
// revision of.
const LabelConfiguration = "mdm.kubemdm.io/configuration"

// RolloutHash orders a device in the rollout of a revision: stable for the
// revision, different from one revision to the next, so that the first
// batch is not always the same devices.
func RolloutHash(uid types.UID, revision string) string {
	sum := sha256.Sum256([]byte(string(uid) + "/" + revision))
	return hex.EncodeToString(sum[:])
}

// Admitted reports whether a device takes a Configuration's current
// revision, or keeps the previous one while a staged rollout has yet to
// reach it.
func Admitted(c *mdmv1alpha1.Configuration, uid types.UID) bool {
	r := c.Status.Rollout
	return r == nil || RolloutHash(uid, r.Revision) < r.AdmittedBelow
}

// RevisionName is the name of the ControllerRevision that holds a
// Configuration's settings at a revision.
func RevisionName(configuration, revision string) string {
	return configuration + "-" + revision
}

// SettingsOf reads the settings a ControllerRevision holds.
func SettingsOf(cr *appsv1.ControllerRevision) (*mdmv1alpha1.ConfigurationSettings, error) {
	s := &mdmv1alpha1.ConfigurationSettings{}
	if err := json.Unmarshal(cr.Data.Raw, s); err != nil {
		return nil, fmt.Errorf("reading ControllerRevision %s: %w", cr.Name, err)
	}
	return s, nil
}
