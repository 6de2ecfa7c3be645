package patch

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// TestSuperseded: the version between a pass's status and finalizer writes
// is stale until the cache shows a newer one; any other version, and any
// other object, is not, and once a newer version was seen the entry goes.
func TestSuperseded(t *testing.T) {
	at := func(uid, rv string) *mdmv1alpha1.Device {
		return &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{UID: k8stypes.UID(uid), ResourceVersion: rv}}
	}
	var s Superseded
	if s.Stale(at("a", "1")) {
		t.Fatal("an object nothing was recorded for is stale")
	}
	s.record("a", "2")
	if !s.Stale(at("a", "2")) || !s.Stale(at("a", "2")) {
		t.Error("the in-between version is not stale while the cache shows it")
	}
	if s.Stale(at("b", "2")) {
		t.Error("another object with the same resourceVersion is stale")
	}
	if s.Stale(at("a", "3")) {
		t.Error("the version after the finalizer write is stale")
	}
	if s.Stale(at("a", "2")) || len(s.rv) != 0 {
		t.Errorf("the entry outlived a newer version: %v", s.rv)
	}
	for i := range maxSuperseded + 1 {
		s.record(k8stypes.UID(fmt.Sprint(i)), "1")
	}
	if len(s.rv) > maxSuperseded {
		t.Errorf("%d entries remembered, bound %d", len(s.rv), maxSuperseded)
	}
}
