package gateway

import (
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
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
