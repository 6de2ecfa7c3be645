package gateway

import (
	"context"
	"crypto/x509"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/pki"
)

// laggingCache shows its Device only after a number of reads, as an
// informer shows a create some time after it.
type laggingCache struct {
	client.Client
	device *mdmv1alpha1.Device
	hidden int64
	reads  atomic.Int64
}

func (c *laggingCache) Get(_ context.Context, key client.ObjectKey, o client.Object, _ ...client.GetOption) error {
	if c.reads.Add(1) <= c.hidden || c.device == nil {
		return apierrors.NewNotFound(schema.GroupResource{Group: mdmv1alpha1.GroupVersion.Group, Resource: "devices"}, key.Name)
	}
	c.device.DeepCopyInto(o.(*mdmv1alpha1.Device))
	return nil
}

func TestCachedDeviceWaitsForAFreshCertificate(t *testing.T) {
	now := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	id := pki.DeviceIdentity{Namespace: "ns", Name: "d", UID: types.UID("uid-1")}
	device := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", UID: "uid-1"}}
	replaced := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", UID: "uid-0"}}
	for _, tc := range []struct {
		name     string
		issued   time.Duration // before now
		device   *mdmv1alpha1.Device
		hidden   int64
		wantCode connect.Code // 0: found
		maxReads int64
	}{
		{name: "fresh certificate, cache behind the create", issued: time.Second, device: device, hidden: 3, maxReads: 4},
		{name: "fresh certificate, cache in step", issued: time.Second, device: device, maxReads: 1},
		{name: "old certificate, Device gone: refused at once", issued: time.Hour, hidden: 1 << 30,
			wantCode: connect.CodeUnauthenticated, maxReads: 1},
		{name: "old certificate, Device replaced: refused at once", issued: time.Hour, device: replaced,
			wantCode: connect.CodeUnauthenticated, maxReads: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := &laggingCache{device: tc.device, hidden: tc.hidden}
			s := &Server{cache: cache, now: func() time.Time { return now }}
			cert := &x509.Certificate{NotBefore: now.Add(-pki.ClockSkew - tc.issued)}
			got, err := s.cachedDevice(context.Background(), id, cert)
			switch {
			case tc.wantCode == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantCode == 0 && got.UID != id.UID:
				t.Fatalf("got Device %s, want %s", got.UID, id.UID)
			case tc.wantCode != 0 && connect.CodeOf(err) != tc.wantCode:
				t.Fatalf("error %v, want code %s", err, tc.wantCode)
			}
			if n := cache.reads.Load(); n > tc.maxReads {
				t.Errorf("%d cache reads, want at most %d", n, tc.maxReads)
			}
		})
	}
}

func TestCachedDeviceWaitEndsWithTheCall(t *testing.T) {
	now := time.Now()
	s := &Server{cache: &laggingCache{hidden: 1 << 30}, now: time.Now}
	id := pki.DeviceIdentity{Namespace: "ns", Name: "d", UID: types.UID("uid-1")}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := s.cachedDevice(ctx, id, &x509.Certificate{NotBefore: now.Add(-pki.ClockSkew)})
	if connect.CodeOf(err) != connect.CodeCanceled {
		t.Fatalf("error %v, want the caller's cancellation while waiting", err)
	}
}
