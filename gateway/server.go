package gateway

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/uuid"
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
	// Listener, when set, is bound already and BindAddress is not used.
	// The manager binds it before its caches sync, so that agents
	// reconnecting during a restart wait in the accept queue for the
	// gateway to serve instead of being refused into a longer backoff.
	Listener net.Listener
	// CertificateLifetime is how long device certificates are valid.
	CertificateLifetime time.Duration
	// StatusFlushInterval bounds how often the lastSeen of an agent that
	// only polls reaches Device.status.
	StatusFlushInterval time.Duration
	// Serving is the gateway's TLS certificate source.
	Serving *ServingCertificate
	// Replica names this replica, unique among the running ones (the pod
	// name). It is recorded on the devices it serves.
	Replica string
	// LeaseNamespace holds the replicas' Leases: the manager's namespace.
	LeaseNamespace string
	// LeaseDuration is how long a replica's Lease holds without renewal;
	// DefaultLeaseDuration when zero.
	LeaseDuration time.Duration
	// HandoverGrace is how long a closed stream or a gone replica's device
	// has to reconnect before it is shown disconnected;
	// DefaultHandoverGrace when zero.
	HandoverGrace time.Duration
	// Payloads is the cache of the Secrets and ConfigMaps labelled for
	// devices (configset.NewPayloadCache); Setup makes one when nil.
	Payloads client.Reader
	// MaxConcurrentEnrollments bounds the enrollments this replica runs at
	// once; the others wait their turn. DefaultMaxConcurrentEnrollments
	// when zero.
	MaxConcurrentEnrollments int
	// MaxConcurrentReports bounds the agents' reports this replica writes
	// to their Devices at once; the others wait their turn.
	// DefaultMaxConcurrentReports when zero.
	MaxConcurrentReports int
	// TicketSecret, at least 32 bytes that every replica shares (see
	// EnsureTicketSecret), lets agents resume their TLS sessions across
	// restarts and replicas; without it they resume with this process
	// only.
	TicketSecret []byte
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
	sweeper   *sweeper
	results   *resultWriter
	hub       *hub
	arrivals  *arrivals
	enrolling *admission
	reporting *admission
	// listener takes the agents' connections and handshakes them, from
	// New on when Options.Listener is bound already.
	listener *handshakeListener
	// freshWait overrides defaultFreshWait in tests.
	freshWait time.Duration
	payloads  client.Reader
	now       func() time.Time
	// tickets keeps agents' TLS sessions valid across restarts and
	// replicas; nil leaves Go's per-process keys.
	tickets *ticketKeyring

	// listening is closed once the listener is bound; Addr is then valid.
	listening chan struct{}
	addr      net.Addr
}

// New creates a gateway. c must be the manager's client (cached reads).
func New(c client.Client, apiReader client.Reader, deviceCA *pki.CA, recorder events.EventRecorder, log logr.Logger, opts Options) *Server {
	if c != nil {
		c = countingClient{c}
	}
	s := &Server{
		cache: c, apiReader: apiReader, deviceCA: deviceCA, recorder: recorder, log: log, opts: opts,
		now: time.Now, listening: make(chan struct{}), payloads: opts.Payloads,
	}
	var err error
	if s.tickets, err = newTicketKeyring(opts.TicketSecret, s.now); err != nil {
		log.Error(err, "Agents will not resume TLS sessions across restarts")
	}
	s.opts.LeaseDuration = cmp.Or(opts.LeaseDuration, DefaultLeaseDuration)
	s.opts.HandoverGrace = cmp.Or(opts.HandoverGrace, DefaultHandoverGrace)
	s.presence = newPresence(c, apiReader, log.WithName("presence"), opts.Replica, opts.StatusFlushInterval, s.opts.HandoverGrace, s.now)
	lease := &replicaLease{client: c, reader: apiReader, namespace: opts.LeaseNamespace, replica: opts.Replica, duration: s.opts.LeaseDuration,
		holder: string(uuid.NewUUID()), log: log.WithName("lease")}
	s.sweeper = newSweeper(lease, s.presence, listedConnections{c}, log.WithName("sweeper"), s.opts.HandoverGrace, s.now)
	s.results = newResultWriter(c, apiReader, log.WithName("results"), s.now)
	s.hub = newHub()
	s.arrivals = newArrivals()
	s.enrolling = newAdmission(cmp.Or(opts.MaxConcurrentEnrollments, DefaultMaxConcurrentEnrollments))
	s.reporting = newAdmission(cmp.Or(opts.MaxConcurrentReports, DefaultMaxConcurrentReports))
	if opts.Listener != nil {
		s.listener = newHandshakeListener(opts.Listener, s.TLSConfig(), handshakeTimeout, tlsHandshakes)
	}
	return s
}

// handshakeTimeout bounds a connection's TLS handshake. An enrollment
// storm queues thousands of handshakes at once, and one dropped after most
// of its work only comes back to do it again.
const handshakeTimeout = 30 * time.Second

// compressMinBytes is the smallest message the gateway compresses, for an
// agent that accepts compression.
const compressMinBytes = 4 << 10

// Handler is the HTTP handler serving the agent protocol.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	path, h := agentv1connect.NewAgentServiceHandler(s, append(codecs(),
		connect.WithReadMaxBytes(maxRequestBytes),
		// Most messages are a few hundred bytes: compressing them costs a
		// compressor per stream on both ends (hundreds of KiB each while
		// in use, and CPU to reset) to save almost nothing.
		connect.WithCompressMinBytes(compressMinBytes),
		connect.WithInterceptors(metricsInterceptor{}),
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
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.opts.Serving.GetCertificate,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      s.deviceCA.Pool(),
		NextProtos:     []string{"h2", "http/1.1"},
	}
	s.tickets.apply(cfg)
	return cfg
}

// Addr is the bound address, once Start has bound it.
func (s *Server) Addr() net.Addr {
	<-s.listening
	return s.addr
}

// NeedLeaderElection is false: every replica serves devices.
func (s *Server) NeedLeaderElection() bool { return false }

// noHeaderTable is an HPACK dynamic table too small for any entry (each
// counts 32 bytes beyond its name and value), so that nothing is indexed;
// 0 would mean the default, 4 KiB.
const noHeaderTable = 1

// Start serves until ctx ends, then drains connections, writes the
// presence changes and command results it holds, and releases its Lease.
func (s *Server) Start(ctx context.Context) error {
	ln := s.listener
	if err := validatePresence(s.opts); err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return err
	}
	if ln == nil {
		bound, err := net.Listen("tcp", s.opts.BindAddress)
		if err != nil {
			return fmt.Errorf("gateway listening on %s: %w", s.opts.BindAddress, err)
		}
		ln = newHandshakeListener(bound, s.TLSConfig(), handshakeTimeout, tlsHandshakes)
	}
	// Closed on every way out; Shutdown closes it too.
	defer func() { _ = ln.Close() }()
	s.addr = ln.Addr()
	close(s.listening)
	// The streams live on their own context, ended only once presence
	// knows that the streams closing from then on are handed over.
	serveCtx, endStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer endStreams()
	srv := &http.Server{
		Handler:   s.Handler(),
		TLSConfig: s.TLSConfig(),
		// The listener has done the TLS handshake.
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return serveCtx },
		// Pings find a stream whose device vanished without a FIN (a
		// dropped NAT entry, a phone that changed networks), so that its
		// disconnect is not held for minutes.
		HTTP2: &http.HTTP2Config{SendPingTimeout: streamKeepalive, PingTimeout: 15 * time.Second,
			// A connection carries one long stream and a report now and
			// then: header compression saves a few hundred bytes per call
			// and its table costs 2-4 KiB per connection for its whole
			// life. Agents from this release index nothing either; the
			// decoder's table is left at its size, since a client's first
			// requests may use it before our settings reach it.
			MaxEncoderHeaderTableSize: noHeaderTable},
		ErrorLog: nil,
	}
	conns, err := newConnServer(srv, ln.Addr(), s.log)
	if err != nil {
		return err
	}
	var background sync.WaitGroup
	for _, run := range []func(context.Context){s.presence.run, s.results.run, s.sweeper.run} {
		background.Go(func() { run(ctx) })
	}
	errc := make(chan error, 1)
	go func() { errc <- conns.serve(ln) }()
	// stopServing ends the streams and closes the connections, within 10s.
	stopServing := func() {
		endStreams()
		_ = ln.Close()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = conns.shutdown(shutdownCtx)
	}
	s.log.Info("Gateway serving", "address", s.addr.String(), "replica", s.opts.Replica)
	select {
	case err := <-errc:
		stopServing()
		return fmt.Errorf("gateway: %w", err)
	case <-ctx.Done():
	}
	s.presence.stop()
	stopServing()
	<-errc
	background.Wait()
	// What the replica holds is written before it lets go: disconnects
	// whose grace has passed and lastSeen not yet written. The streams the
	// shutdown closed, and disconnects still in their grace, are handed
	// over: their devices reconnect to another replica, and the others
	// mark those that do not once the Lease is gone.
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelFlush()
	s.presence.flush(flushCtx)
	releaseCtx, cancelRelease := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelRelease()
	if err := s.sweeper.lease.release(releaseCtx); err != nil {
		s.log.Error(err, "Releasing the gateway replica's Lease; the other replicas wait for it to lapse")
	}
	return nil
}
