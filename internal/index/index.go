// Package index holds the cache field indexes that the gateway and the
// controllers share. Either may run without the other in a manager, so each
// registers what it needs and a second registration is a no-op.
package index

import (
	"context"
	"fmt"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

const (
	// OpenCommands finds DeviceActions by the devices that have a command
	// still to deliver or to complete (rows Queued or Delivered).
	OpenCommands = "status.devices.open"
	// ActionUID finds a DeviceAction by UID, the id of its commands.
	ActionUID = "metadata.uid"
)

// OpenCommandDevices is the OpenCommands index function.
func OpenCommandDevices(o client.Object) []string {
	a := o.(*mdmv1alpha1.DeviceAction)
	if a.Spec.DryRun || a.Status.Phase.Finished() {
		return nil
	}
	var out []string
	for _, row := range a.Status.Devices {
		if row.Phase.Open() {
			out = append(out, row.Name)
		}
	}
	return out
}

func actionUID(o client.Object) []string { return []string{string(o.GetUID())} }

var (
	mu         sync.Mutex
	registered = map[client.FieldIndexer]map[string]bool{}
)

// Register adds the named DeviceAction indexes to the indexer, once.
func Register(ctx context.Context, indexer client.FieldIndexer, names ...string) error {
	mu.Lock()
	defer mu.Unlock()
	if registered[indexer] == nil {
		registered[indexer] = map[string]bool{}
	}
	for _, name := range names {
		if registered[indexer][name] {
			continue
		}
		fn := map[string]client.IndexerFunc{OpenCommands: OpenCommandDevices, ActionUID: actionUID}[name]
		if fn == nil {
			return fmt.Errorf("no index %q", name)
		}
		if err := indexer.IndexField(ctx, &mdmv1alpha1.DeviceAction{}, name, fn); err != nil {
			return fmt.Errorf("indexing DeviceActions by %s: %w", name, err)
		}
		registered[indexer][name] = true
	}
	return nil
}
