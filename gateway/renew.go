package gateway

import (
	"context"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	"github.com/kubemdm/kubemdm/internal/pki"
)

// RenewCertificate issues a fresh identity certificate to a device that still
// holds a valid one, for a key of its choosing.
func (s *Server) RenewCertificate(ctx context.Context, req *connect.Request[agentv1.RenewCertificateRequest]) (*connect.Response[agentv1.RenewCertificateResponse], error) {
	device, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	csr, err := pki.ParseCSR([]byte(req.Msg.GetCsrPem()))
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("csr_pem: %w", err))
	}
	certPEM, cert, err := s.deviceCA.SignDevice(csr, pki.DeviceIdentity{Namespace: device.Namespace, Name: device.Name, UID: device.UID}, s.opts.CertificateLifetime)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	return connect.NewResponse(&agentv1.RenewCertificateResponse{
		CertificatePem:      string(certPEM),
		CertificateNotAfter: timestamppb.New(cert.NotAfter),
	}), nil
}
