// Package gateway is the device-facing server: enrollment, the configuration
// and command stream, status reports and command results. It answers from the
// manager's informer cache, never by listing from the apiserver, and batches
// its writes.
package gateway

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/index"
)

// Cache field indexes the gateway looks objects up by.
const (
	// IndexTokenHash finds an EnrollmentToken by the hash of its value.
	IndexTokenHash = "status.tokenHash"
	// IndexSerialNumber finds a Device by spec.serialNumber.
	IndexSerialNumber = "spec.serialNumber"
)

// SetupIndexes registers the gateway's field indexes with the manager cache.
func SetupIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	if err := indexer.IndexField(ctx, &mdmv1alpha1.EnrollmentToken{}, IndexTokenHash, func(o client.Object) []string {
		if h := o.(*mdmv1alpha1.EnrollmentToken).Status.TokenHash; h != "" {
			return []string{h}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing EnrollmentTokens by hash: %w", err)
	}
	if err := indexer.IndexField(ctx, &mdmv1alpha1.Device{}, IndexSerialNumber, func(o client.Object) []string {
		if s := o.(*mdmv1alpha1.Device).Spec.SerialNumber; s != "" {
			return []string{s}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing Devices by serial number: %w", err)
	}
	return index.Register(ctx, indexer, index.OpenCommands, index.ActionUID)
}
