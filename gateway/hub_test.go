package gateway

import (
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/configset"
)

func TestDeletedDeviceEndsItsStreams(t *testing.T) {
	device := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: "fleet", Name: "phone"}}
	for name, event := range map[string]any{
		"a deletion":                   device,
		"a tombstone after a relist":   toolscache.DeletedFinalStateUnknown{Key: "fleet/phone", Obj: device},
		"a tombstone without its body": toolscache.DeletedFinalStateUnknown{Key: "fleet/phone"},
	} {
		t.Run(name, func(t *testing.T) {
			s := New(nil, nil, nil, nil, logr.Discard(), Options{StatusFlushInterval: time.Minute})
			sub := s.hub.add(client.ObjectKeyFromObject(device), configVersion{})
			s.onDeviceDelete(event)
			select {
			case <-sub.closed:
			case <-time.After(time.Second):
				t.Fatal("the stream of the deleted Device stayed open")
			}
		})
	}
}

// TestDeviceUpdatesThatRenderAgain: only a change a render reads (the
// spec, the labels, the UID) has the Device's streams render their
// configuration again; its status, written on every report, does not.
func TestDeviceUpdatesThatRenderAgain(t *testing.T) {
	base := &mdmv1alpha1.Device{
		ObjectMeta: metav1.ObjectMeta{Namespace: "fleet", Name: "phone", UID: "u1", Generation: 2, Labels: map[string]string{"site": "lyon"}},
		Status:     mdmv1alpha1.DeviceStatus{Phase: mdmv1alpha1.DeviceEnrolled},
	}
	for _, tc := range []struct {
		name   string
		change func(d *mdmv1alpha1.Device)
		want   bool
	}{
		{"its report", func(d *mdmv1alpha1.Device) {
			d.Status.Configurations = []mdmv1alpha1.DeviceConfigurationStatus{{Name: "wifi", State: mdmv1alpha1.ConfigurationApplied}}
			d.Status.Conditions = []metav1.Condition{{Type: mdmv1alpha1.DeviceConditionConnected, Status: metav1.ConditionTrue}}
			d.ResourceVersion = "9"
		}, false},
		{"an annotation", func(d *mdmv1alpha1.Device) { d.Annotations = map[string]string{"note": "desk 4"} }, false},
		{"its spec", func(d *mdmv1alpha1.Device) { d.Generation++ }, true},
		{"a label a selector may read", func(d *mdmv1alpha1.Device) { d.Labels = map[string]string{"site": "paris"} }, true},
		{"a new label", func(d *mdmv1alpha1.Device) { d.Labels["ring"] = "canary" }, true},
		{"recreated under its name", func(d *mdmv1alpha1.Device) { d.UID = "u2" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(nil, nil, nil, nil, logr.Discard(), Options{StatusFlushInterval: time.Minute})
			sub := s.hub.add(client.ObjectKeyFromObject(base), configVersion{})
			sub.takeConfigDue()
			d := base.DeepCopy()
			tc.change(d)
			s.onDeviceChange(base, d)
			if got := sub.takeConfigDue(); got != tc.want {
				t.Errorf("a render due after %s: %v, want %v", tc.name, got, tc.want)
			}
		})
	}
	t.Run("released", func(t *testing.T) {
		s := New(nil, nil, nil, nil, logr.Discard(), Options{StatusFlushInterval: time.Minute})
		sub := s.hub.add(client.ObjectKeyFromObject(base), configVersion{})
		d := base.DeepCopy()
		d.Status.Phase = mdmv1alpha1.DeviceRetired
		s.onDeviceChange(base, d)
		select {
		case <-sub.closed:
		case <-time.After(time.Second):
			t.Fatal("the stream of a Device no longer managed stayed open")
		}
	})
}

// TestConfigurationDelivery: which updates reach an agent, and which
// Configuration writes wake streams at all.
func TestConfigurationDelivery(t *testing.T) {
	held := func(gen int64) *agentv1.DesiredConfig {
		return &agentv1.DesiredConfig{Generation: gen, ConfigurationsHeld: true, ConfigurationsDigest: heldDigest}
	}
	for _, tc := range []struct {
		name  string
		cfg   *agentv1.DesiredConfig
		agent configVersion
		want  bool
	}{
		{"the same", &agentv1.DesiredConfig{Generation: 3, ConfigurationsDigest: "d1"}, configVersion{3, "d1"}, false},
		{"a new digest", &agentv1.DesiredConfig{Generation: 3, ConfigurationsDigest: "d2"}, configVersion{3, "d1"}, true},
		{"a new generation", &agentv1.DesiredConfig{Generation: 4, ConfigurationsDigest: "d1"}, configVersion{3, "d1"}, true},
		{"an older generation from a stale cache", &agentv1.DesiredConfig{Generation: 2, ConfigurationsDigest: "d2"}, configVersion{3, "d1"}, false},
		{"held at the agent's generation", held(3), configVersion{3, "d1"}, false},
		{"held with a new generation", held(4), configVersion{3, "d1"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := differs(tc.cfg, tc.agent); got != tc.want {
				t.Errorf("differs = %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("a held configuration goes once per generation on a stream", func(t *testing.T) {
		sub := newHub().add(types.NamespacedName{Namespace: "fleet", Name: "phone"}, configVersion{3, "d1"})
		sends := 0
		for _, cfg := range []*agentv1.DesiredConfig{held(4), held(4), held(4), {Generation: 4, ConfigurationsDigest: "d1"}, {Generation: 4, ConfigurationsDigest: "d2"}} {
			if sub.shouldSend(cfg) {
				sends++
			}
		}
		if sends != 2 {
			t.Errorf("%d sends, want 2: the held generation 4, then digest d2 (d1 is what the agent kept)", sends)
		}
	})

	base := mdmv1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Generation: 2}, Status: mdmv1alpha1.ConfigurationStatus{Revision: "r2",
		Rollout: &mdmv1alpha1.RolloutStatus{Revision: "r2", PreviousRevision: "r1", AdmittedBelow: "4"}}}
	for _, tc := range []struct {
		name   string
		change func(c *mdmv1alpha1.Configuration)
		want   bool
	}{
		{"counts and conditions", func(c *mdmv1alpha1.Configuration) {
			c.Status.Rollout.Updated = 4
			c.Status.Devices = &mdmv1alpha1.ConfigurationDeviceCounts{Applied: 4}
			c.Status.Conditions = []metav1.Condition{{Type: "Reconciling", Status: metav1.ConditionTrue}}
		}, false},
		{"the spec", func(c *mdmv1alpha1.Configuration) { c.Generation++ }, true},
		{"the revision", func(c *mdmv1alpha1.Configuration) { c.Status.Revision = "r3" }, true},
		{"the next batch", func(c *mdmv1alpha1.Configuration) { c.Status.Rollout.AdmittedBelow = "8" }, true},
		{"the rollout ends", func(c *mdmv1alpha1.Configuration) { c.Status.Rollout = nil }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base.DeepCopy()
			tc.change(c)
			if got := configset.Republished(&base, c); got != tc.want {
				t.Errorf("Republished = %v, want %v", got, tc.want)
			}
		})
	}
}
