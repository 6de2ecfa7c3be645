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

// laggingCache shows its Device only once shown, as an informer shows a
// create some time after it.
type laggingCache struct {
	client.Client
	device *mdmv1alpha1.Device
	hidden atomic.Bool
	reads  atomic.Int64
}

func (c *laggingCache) Get(_ context.Context, key client.ObjectKey, o client.Object, _ ...client.GetOption) error {
	c.reads.Add(1)
	if c.hidden.Load() || c.device == nil {
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
		hidden   bool
		arrives  bool         // the informer adds the hidden Device after a moment
		wantCode connect.Code // 0: found
		maxReads int64
	}{
		{name: "fresh certificate, cache behind the create: woken by its arrival", issued: time.Second, device: device,
			hidden: true, arrives: true, maxReads: 2},
		{name: "fresh certificate, cache in step", issued: time.Second, device: device, maxReads: 1},
		{name: "fresh certificate, Device never seen: try again later", issued: time.Second, device: device, hidden: true,
			wantCode: connect.CodeUnavailable, maxReads: 1},
		{name: "old certificate, Device gone: refused at once", issued: time.Hour, hidden: true,
			wantCode: connect.CodeUnauthenticated, maxReads: 1},
		{name: "old certificate, Device replaced: refused at once", issued: time.Hour, device: replaced,
			wantCode: connect.CodeUnauthenticated, maxReads: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := &laggingCache{device: tc.device}
			cache.hidden.Store(tc.hidden)
			s := &Server{cache: cache, arrivals: newArrivals(), freshWait: 300 * time.Millisecond, now: func() time.Time { return now }}
			if tc.arrives {
				go func() {
					time.Sleep(50 * time.Millisecond)
					cache.hidden.Store(false)
					s.arrivals.arrived(id.UID)
				}()
			}
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
				t.Errorf("%d cache reads, want at most %d: a waiting call reads again only when its Device arrives", n, tc.maxReads)
			}
			s.arrivals.mu.Lock()
			n := len(s.arrivals.waiting)
			s.arrivals.mu.Unlock()
			if n != 0 {
				t.Errorf("%d Devices still waited for after the call returned", n)
			}
		})
	}
}

func TestCachedDeviceWaitEndsWithTheCall(t *testing.T) {
	now := time.Now()
	cache := &laggingCache{}
	cache.hidden.Store(true)
	s := &Server{cache: cache, arrivals: newArrivals(), now: time.Now}
	id := pki.DeviceIdentity{Namespace: "ns", Name: "d", UID: types.UID("uid-1")}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := s.cachedDevice(ctx, id, &x509.Certificate{NotBefore: now.Add(-pki.ClockSkew)})
	if connect.CodeOf(err) != connect.CodeCanceled {
		t.Fatalf("error %v, want the caller's cancellation while waiting", err)
	}
}
