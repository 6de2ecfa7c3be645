package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// Every gateway replica holds a Lease, as a kubelet does for its node, and
// records its name on the devices it serves (status.connection). A replica
// that stops renewing its Lease, or deletes it on the way out, has its
// devices marked disconnected by the others once they had time to move.
const (
	// leasePrefix names a replica's Lease: kubemdm-gateway-<replica>.
	leasePrefix = "kubemdm-gateway-"
	// labelGatewayLease marks the Leases of gateway replicas, so that one
	// List in the manager's namespace finds them all.
	labelGatewayLease = "mdm.kubemdm.io/gateway-lease"

	// DefaultLeaseDuration is how long a replica's Lease holds without a
	// renewal; a replica renews it four times within.
	DefaultLeaseDuration = 40 * time.Second
	// DefaultHandoverGrace is how long the devices of a replica that is
	// gone (or of this replica's previous process) have to reconnect
	// before they are marked disconnected, and how long a closed stream
	// waits for the device to come back before its disconnect is written.
	DefaultHandoverGrace = 10 * time.Second
)

// ValidateReplicaName checks a replica name: a DNS label, as it is part of
// a Lease name and shown in kubectl get devices -o wide.
func ValidateReplicaName(name string) error {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("gateway replica name %q: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

// validatePresence checks the replica name and the presence timings.
func validatePresence(o Options) error {
	if err := ValidateReplicaName(o.Replica); err != nil {
		return err
	}
	if o.LeaseDuration < time.Second || o.LeaseDuration%time.Second != 0 {
		return fmt.Errorf("gateway lease duration %s: must be whole seconds, at least 1s", o.LeaseDuration)
	}
	if o.HandoverGrace <= 0 {
		return fmt.Errorf("gateway handover grace %s: must be more than zero", o.HandoverGrace)
	}
	return nil
}

// replicaLease is this replica's Lease.
type replicaLease struct {
	// holder is the replica name and this process: two processes given
	// the same replica name would mark each other's devices, so the one
	// that finds another's fresh renewal says so.
	holder    string
	held      bool
	log       logr.Logger
	client    client.Client
	reader    client.Reader
	namespace string
	replica   string
	duration  time.Duration
}

func (l *replicaLease) holderIdentity() string {
	if l.holder == "" {
		return l.replica
	}
	return l.replica + "/" + l.holder
}

func (l *replicaLease) key() client.ObjectKey {
	return client.ObjectKey{Namespace: l.namespace, Name: leasePrefix + l.replica}
}

// renew creates the Lease or moves its renewTime to now. It reads the Lease
// from the apiserver: the manager's cache does not watch Leases.
func (l *replicaLease) renew(ctx context.Context, now time.Time) error {
	lease := &coordinationv1.Lease{}
	err := l.reader.Get(ctx, l.key(), lease)
	switch {
	case apierrors.IsNotFound(err):
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: l.namespace, Name: l.key().Name,
				Labels: map[string]string{labelGatewayLease: "true", mdmv1alpha1.LabelManagedBy: mdmv1alpha1.ManagedByValue}},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(l.holderIdentity()),
				LeaseDurationSeconds: ptr.To(int32(l.duration / time.Second)),
				AcquireTime:          ptr.To(metav1.NewMicroTime(now)),
				RenewTime:            ptr.To(metav1.NewMicroTime(now)),
			},
		}
		if err := l.client.Create(ctx, lease); err != nil {
			return fmt.Errorf("creating gateway Lease %s: %w", l.key(), err)
		}
		l.held = true
		return nil
	case err != nil:
		return fmt.Errorf("reading gateway Lease %s: %w", l.key(), err)
	}
	// The first renewal takes over from this replica's previous process;
	// a holder changing under a later one is another live process.
	if h := ptr.Deref(lease.Spec.HolderIdentity, ""); l.held && h != l.holderIdentity() {
		l.log.Error(errors.New("gateway replica name in use"), "Another running process renews this replica's Lease; give every replica its own --gateway-replica",
			"replica", l.replica, "holder", h)
	}
	lease.Spec.HolderIdentity = ptr.To(l.holderIdentity())
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(l.duration / time.Second))
	lease.Spec.RenewTime = ptr.To(metav1.NewMicroTime(now))
	if err := l.client.Update(ctx, lease); err != nil {
		return fmt.Errorf("renewing gateway Lease %s: %w", l.key(), err)
	}
	l.held = true
	return nil
}

// release deletes the Lease of a replica that stops, so that the others
// start counting its devices' grace at once instead of after the Lease
// would have lapsed.
func (l *replicaLease) release(ctx context.Context) error {
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: l.namespace, Name: l.key().Name}}
	if err := l.client.Delete(ctx, lease); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("releasing gateway Lease %s: %w", l.key(), err)
	}
	return nil
}

// leaseInfo is what a replica's Lease says.
type leaseInfo struct {
	renewed  time.Time
	duration time.Duration
}

// list reads the gateway Leases, by replica.
func (l *replicaLease) list(ctx context.Context) (map[string]leaseInfo, error) {
	leases := &coordinationv1.LeaseList{}
	if err := l.reader.List(ctx, leases, client.InNamespace(l.namespace), client.MatchingLabels{labelGatewayLease: "true"}); err != nil {
		return nil, fmt.Errorf("listing gateway Leases: %w", err)
	}
	out := map[string]leaseInfo{}
	for _, lease := range leases.Items {
		replica, ok := strings.CutPrefix(lease.Name, leasePrefix)
		if !ok || lease.Spec.RenewTime == nil {
			continue
		}
		info := leaseInfo{renewed: lease.Spec.RenewTime.Time, duration: l.duration}
		if s := lease.Spec.LeaseDurationSeconds; s != nil && *s > 0 {
			info.duration = time.Duration(*s) * time.Second
		}
		out[replica] = info
	}
	return out, nil
}
