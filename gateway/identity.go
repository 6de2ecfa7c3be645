package gateway

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/pki"
)

type identityKey struct{}

// identityResult is what the TLS layer said about the caller.
type identityResult struct {
	id   pki.DeviceIdentity
	cert *x509.Certificate
	err  error
	// present is false when the caller sent no client certificate.
	present bool
}

// withIdentity reads the device identity from the verified client
// certificate. The TLS layer has already refused certificates of other CAs;
// this only names the device.
func withIdentity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := identityResult{}
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
			res.present, res.cert = true, r.TLS.VerifiedChains[0][0]
			res.id, res.err = pki.IdentityFromCertificate(res.cert)
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, res)))
	})
}

// authenticate returns the calling device from the cache, refusing callers
// without a certificate, certificates of deleted or re-created Devices, and
// devices no longer under management.
func (s *Server) authenticate(ctx context.Context) (*mdmv1alpha1.Device, error) {
	device, _, err := s.authenticateWithCert(ctx)
	return device, err
}

// authenticateWithCert is authenticate that also returns the certificate.
func (s *Server) authenticateWithCert(ctx context.Context) (*mdmv1alpha1.Device, *x509.Certificate, error) {
	res, _ := ctx.Value(identityKey{}).(identityResult)
	if !res.present {
		return nil, nil, connect.NewError(connect.CodeUnauthenticated, errors.New("a client certificate from Enroll is required"))
	}
	if res.err != nil {
		return nil, nil, connect.NewError(connect.CodeUnauthenticated, res.err)
	}
	device, err := s.cachedDevice(ctx, res.id, res.cert)
	if err != nil {
		return nil, nil, err
	}
	if !device.Status.Phase.Managed() {
		return nil, nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("device %s is %s and no longer managed", res.id, device.Status.Phase))
	}
	return device, res.cert, nil
}

// freshWait is how long a call with a certificate issued a moment ago waits
// for the cache to show its Device. A device calls Subscribe right after
// Enroll; during an enrollment storm the informer falls seconds behind the
// creates (10,000 devices enrolling at once put it past 5s), and refusing
// the call would send the agent into a backoff of up to half a minute.
const defaultFreshWait = 30 * time.Second

// cachedDevice reads the certificate's Device from the cache, waiting for
// it while the certificate is fresh. An older certificate whose Device is
// missing or replaced is refused at once.
func (s *Server) cachedDevice(ctx context.Context, id pki.DeviceIdentity, cert *x509.Certificate) (*mdmv1alpha1.Device, error) {
	fresh := s.now().Sub(cert.NotBefore) < pki.ClockSkew+time.Minute
	var deadline <-chan time.Time
	for {
		var arrived <-chan struct{}
		if fresh {
			ch, stop := s.arrivals.wait(id.UID)
			defer stop()
			arrived = ch
		}
		device := &mdmv1alpha1.Device{}
		err := s.cache.Get(ctx, id.Key(), device)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("reading device: %w", err))
		}
		if err == nil && device.UID == id.UID {
			return device, nil
		}
		if !fresh {
			if err != nil {
				return nil, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("device %s no longer exists", id))
			}
			return nil, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("certificate belongs to an earlier device named %s", id))
		}
		if deadline == nil {
			t := time.NewTimer(cmp.Or(s.freshWait, defaultFreshWait))
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-ctx.Done():
			return nil, connect.NewError(connect.CodeCanceled, ctx.Err())
		case <-deadline:
			// The certificate was issued for this Device a moment ago:
			// the gateway is behind, not the device wrong.
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("the gateway has yet to see device %s; try again", id))
		case <-arrived:
		}
	}
}
