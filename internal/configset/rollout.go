package configset

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

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

// DueRevision is the revision a device should hold of a Configuration and
// since when: the settled revision, from when it was settled or the device
// admitted; for a device a staged rollout has yet to reach, "" (whatever
// it holds).
func DueRevision(c *mdmv1alpha1.Configuration, uid types.UID) (string, time.Time) {
	since := c.CreationTimestamp.Time
	if c.Status.RevisionTime != nil {
		since = c.Status.RevisionTime.Time
	}
	r := c.Status.Rollout
	switch {
	case c.Spec.Rollout == nil || r == nil:
		return c.Status.Revision, since
	case !Admitted(c, uid):
		// It keeps the previous settings, rendered with the Secrets'
		// current values, which may make a revision of their own: any
		// revision it applied will do.
		return "", time.Time{}
	case r.AdmittedTime != nil && r.AdmittedTime.After(since):
		since = r.AdmittedTime.Time
	}
	return c.Status.Revision, since
}

// Republished reports whether a Configuration's update can change what a
// device gets or should hold, and by when: its spec, its revision and its
// time, or where its rollout stands. The controller's count and condition writes, several per rollout
// batch, change none of these.
func Republished(old, c *mdmv1alpha1.Configuration) bool {
	stage := func(c *mdmv1alpha1.Configuration) [3]string {
		if r := c.Status.Rollout; r != nil {
			return [3]string{r.Revision, r.PreviousRevision, r.AdmittedBelow}
		}
		return [3]string{}
	}
	return old.Generation != c.Generation || old.Status.Revision != c.Status.Revision || stage(old) != stage(c) ||
		!old.Status.RevisionTime.Equal(c.Status.RevisionTime)
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
