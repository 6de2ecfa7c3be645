package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/api/agent/v1/agentv1connect"
	"github.com/kubemdm/kubemdm/internal/pki"
)

// maxRequestBytes bounds every request body: the largest legitimate one is a
// status report with 64 configurations and certificates.
const maxRequestBytes = 256 << 10

// Options configure the gateway.
type Options struct {
	// BindAddress is host:port to listen on.
	BindAddress string
	// CertificateLifetime is how long device certificates are valid.
	CertificateLifetime time.Duration
	// StatusFlushInterval bounds how often lastSeen reaches Device.status.
	StatusFlushInterval time.Duration
	// Serving is the gateway's TLS certificate source.
	Serving *ServingCertificate
}

// Server is the device-facing gateway. It runs on every manager replica
// without leader election.
type Server struct {
	agentv1connect.UnimplementedAgentServiceHandler

	// cache answers reads; writes go straight to the apiserver.
	cache client.Client
	// apiReader reads what must be fresh, such as the token being consumed.
	apiReader client.Reader
	deviceCA  *pki.CA
	recorder  events.EventRecorder
	log       logr.Logger
	opts      Options
	presence  *presence
	results   *resultWriter
	hub       *hub
	now       func() time.Time

	// listening is closed once the listener is bound; Addr is then valid.
	listening chan struct{}
	addr      net.Addr
}

// New creates a gateway. c must be the manager's client (cached reads).
func New(c client.Client, apiReader client.Reader, deviceCA *pki.CA, recorder events.EventRecorder, log logr.Logger, opts Options) *Server {
	s := &Server{
		cache: c, apiReader: apiReader, deviceCA: deviceCA, recorder: recorder, log: log, opts: opts,
		now: time.Now, listening: make(chan struct{}),
	}
	s.presence = newPresence(c, log.WithName("presence"), opts.StatusFlushInterval, s.now)
	s.results = newResultWriter(c, apiReader, log.WithName("results"))
	s.hub = newHub()
	return s
}

// Handler is the HTTP handler serving the agent protocol.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	path, h := agentv1connect.NewAgentServiceHandler(s, append(codecs(),
		connect.WithReadMaxBytes(maxRequestBytes),
		connect.WithRecover(func(ctx context.Context, spec connect.Spec, _ http.Header, p any) error {
			s.log.Error(fmt.Errorf("panic: %v", p), "Recovered from a panic in a handler", "procedure", spec.Procedure)
			return connect.NewError(connect.CodeInternal, errors.New("internal error"))
		}),
	)...)
	mux.Handle(path, withIdentity(http.MaxBytesHandler(h, maxRequestBytes+1024)))
	// Reflection lets grpcurl and buf curl list and call the service
	// without the .proto. It reveals only the public protocol, so it needs
	// no client certificate.
	reflector := grpcreflect.NewStaticReflector(agentv1connect.AgentServiceName)
	mux.Handle(grpcreflect.NewHandlerV1(reflector, connect.WithReadMaxBytes(maxRequestBytes)))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, connect.WithReadMaxBytes(maxRequestBytes)))
	return mux
}

// TLSConfig is the gateway's TLS configuration: a client certificate is
// optional (Enroll has none yet) but, when sent, must chain to the device CA,
// so a certificate from any other CA is refused during the handshake.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.opts.Serving.GetCertificate,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      s.deviceCA.Pool(),
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// Addr is the bound address, once Start has bound it.
func (s *Server) Addr() net.Addr {
	<-s.listening
	return s.addr
}

// NeedLeaderElection is false: every replica serves devices.
func (s *Server) NeedLeaderElection() bool { return false }

// Start serves until ctx ends, then drains connections and flushes presence
// and pending command results.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.BindAddress)
	if err != nil {
		return fmt.Errorf("gateway listening on %s: %w", s.opts.BindAddress, err)
	}
	s.addr = ln.Addr()
	close(s.listening)
	srv := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          nil,
	}
	presenceDone := make(chan struct{})
	go func() {
		defer close(presenceDone)
		s.presence.run(ctx)
	}()
	resultsDone := make(chan struct{})
	go func() {
		defer close(resultsDone)
		s.results.run(ctx)
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	s.log.Info("Gateway serving", "address", s.addr.String())
	select {
	case err := <-errc:
		return fmt.Errorf("gateway: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	<-presenceDone
	<-resultsDone
	return nil
}
