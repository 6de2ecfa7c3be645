package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/go-logr/logr"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	"github.com/kubemdm/kubemdm/api/agent/v1/agentv1connect"
)

// Options configure an agent.
type Options struct {
	// Gateway is host:port of the gateway.
	Gateway string
	// Token is the enrollment token, needed only until the agent enrolled.
	Token string
	// Trust verifies the gateway before enrollment; afterwards the CA bundle
	// received at enrollment is used.
	Trust Trust
	// Heartbeat is how often the agent reports while connected.
	Heartbeat time.Duration
	// MaxBackoff caps the wait between reconnects.
	MaxBackoff time.Duration
}

// Agent is one device's agent.
type Agent struct {
	opts     Options
	state    *State
	platform Platform
	log      logr.Logger
	// heartbeats counts the heartbeats the gateway took.
	heartbeats atomic.Uint64
	// sessions counts the streams that opened: the first message came.
	sessions atomic.Uint64
	// tlsSessions are kept for resuming across connections.
	tlsSessions tlsSessions
}

// New creates an agent that keeps its state in state.
func New(opts Options, state *State, platform Platform, log logr.Logger) *Agent {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = time.Minute
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	return &Agent{opts: opts, state: state, platform: platform, log: log}
}

// maxEnrollRefusals is how many times an unenrolled agent tries a refused
// token before it gives up.
const maxEnrollRefusals = 5

// ErrReleased means the gateway no longer manages this device.
var ErrReleased = errors.New("the device is no longer managed")

func (a *Agent) client(withIdentity bool) (agentv1connect.AgentServiceClient, *http.Transport, error) {
	trust := a.opts.Trust
	if ca := a.state.GatewayCA(); withIdentity && len(ca) > 0 {
		trust = Trust{CABundle: ca}
	}
	var cert *tls.Certificate
	if withIdentity {
		c, err := a.state.Certificate()
		if err != nil {
			return nil, nil, fmt.Errorf("loading the agent certificate: %w", err)
		}
		cert = &c
	}
	cfg, err := trust.tlsConfig(a.opts.Gateway, cert)
	if err != nil {
		return nil, nil, err
	}
	if cert != nil {
		cfg.ClientSessionCache = a.tlsSessions.cacheFor(cert, trust)
	}
	// A restarting gateway binds its port before it serves: a handshake
	// may wait in its accept queue for a while, but not for ever.
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: handshakeTimeout,
		// Headers go uncompressed, so that neither end keeps an HPACK
		// table for the life of the connection: a gateway holds one per
		// device (see the gateway's noHeaderTable).
		HTTP2: &http.HTTP2Config{MaxEncoderHeaderTableSize: 1}}
	return agentv1connect.NewAgentServiceClient(&http.Client{Transport: tr}, "https://"+a.opts.Gateway), tr, nil
}

// Enroll enrolls the agent if it has no identity yet.
func (a *Agent) Enroll(ctx context.Context) error {
	if a.state.Enrolled() {
		return nil
	}
	if a.opts.Token == "" {
		return errors.New("the agent is not enrolled: give an enrollment token")
	}
	c, tr, err := a.client(false)
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	keyPEM, csrPEM, err := a.state.EnrollmentKeyAndCSR()
	if err != nil {
		return err
	}
	resp, err := c.Enroll(ctx, connect.NewRequest(&agentv1.EnrollRequest{
		Token: a.opts.Token, CsrPem: string(csrPEM), DeviceInfo: a.platform.Info(),
	}))
	if err != nil {
		return fmt.Errorf("enrolling: %w", err)
	}
	if err := a.state.StoreCredentials(keyPEM, []byte(resp.Msg.GetCertificatePem()), []byte(resp.Msg.GetCaBundlePem())); err != nil {
		return err
	}
	a.state.Identity = Identity{Name: resp.Msg.GetDeviceName(), Namespace: resp.Msg.GetNamespace(), UID: resp.Msg.GetDeviceUid()}
	a.state.Gateway = a.opts.Gateway
	a.log.Info("Enrolled", "device", resp.Msg.GetNamespace()+"/"+resp.Msg.GetDeviceName())
	if err := a.state.Save(); err != nil {
		return err
	}
	// Only now: had the agent stopped before the identity was saved, its
	// retry must still present the key the Device enrolled with.
	return a.state.ForgetEnrollmentKey()
}

// Heartbeats is how many heartbeats the gateway has taken from this agent.
func (a *Agent) Heartbeats() uint64 { return a.heartbeats.Load() }

// Sessions is how many streams to the gateway this agent has opened.
func (a *Agent) Sessions() uint64 { return a.sessions.Load() }

// Identity is the Device the agent enrolled as.
func (a *Agent) Identity() Identity { return a.state.Identity }

// handshakeTimeout bounds a TLS handshake with the gateway: longer than
// the gateway's own (30s, which an enrollment storm's queue may use) plus a
// restarting manager's wait for its caches.
const handshakeTimeout = time.Minute

// Reconnect backoff: from minBackoff, doubling up to Options.MaxBackoff, and
// back to minBackoff after a session that lasted healthySession.
const (
	minBackoff     = 250 * time.Millisecond
	healthySession = time.Minute
)

// Run enrolls if needed and keeps a stream to the gateway until ctx ends or
// the device is released, reconnecting with capped, jittered backoff.
func (a *Agent) Run(ctx context.Context) error {
	backoff := minBackoff
	refusals := 0
	for {
		began := time.Now()
		err := a.Enroll(ctx)
		if err == nil {
			err = a.session(ctx)
		}
		// A session that held for a while ended by chance (a gateway
		// restart, a network change): start over with a short wait instead
		// of the backoff earned by failures long ago.
		if time.Since(began) >= healthySession {
			backoff = minBackoff
		}
		if ctx.Err() != nil {
			return nil
		}
		switch connect.CodeOf(err) {
		case connect.CodePermissionDenied:
			return fmt.Errorf("%w: %v", ErrReleased, err)
		case connect.CodeUnauthenticated:
			// A token created a moment ago may not have reached every
			// gateway replica yet; a few tries tell that from a bad token.
			if refusals++; !a.state.Enrolled() && refusals >= maxEnrollRefusals {
				return err
			}
		case connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodeAlreadyExists:
			if !a.state.Enrolled() {
				return err // the request itself is wrong: retrying cannot help
			}
		}
		if err != nil {
			a.log.V(1).Info("Reconnecting", "error", err.Error(), "after", backoff)
		}
		wait := jittered(backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, a.opts.MaxBackoff)
	}
}

// jittered is a wait between half of backoff and backoff, at random: the
// jitter spreads a fleet's reconnects after a gateway restart, and the
// wait never passes backoff, so MaxBackoff is the longest an agent waits.
func jittered(backoff time.Duration) time.Duration {
	half := backoff / 2
	if half <= 0 {
		return backoff
	}
	return half + time.Duration(rand.Int64N(int64(backoff-half)+1))
}

// session holds one stream open and handles what arrives on it.
func (a *Agent) session(ctx context.Context) error {
	if err := a.renewIfDue(ctx); err != nil {
		a.log.Error(err, "Renewing the certificate")
	}
	c, tr, err := a.client(true)
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	// Commands run under the agent's own context, not the session's: a
	// stream that breaks must not interrupt a wipe halfway.
	lifetime := ctx
	ctx, cancel := context.WithCancel(ctx)
	// The worker runs configurations and commands in the order they came,
	// while this loop keeps reading, so a CancelCommand reaches a command
	// still waiting its turn. A session ends only once its worker has, so
	// two sessions never run commands at once.
	queue := newWorkQueue()
	var worker sync.WaitGroup
	worker.Go(func() { a.work(ctx, lifetime, c, queue) })
	defer func() { cancel(); worker.Wait() }()
	stream, err := c.Subscribe(ctx, connect.NewRequest(&agentv1.SubscribeRequest{ConfigGeneration: a.state.AppliedGeneration(), ConfigurationsDigest: a.state.AppliedDigest()}))
	if err != nil {
		return err
	}
	defer stream.Close()
	defer a.heartbeat(ctx, c)()
	// A stream whose connection died without a FIN stays silent forever;
	// once the gateway has said how often it sends a Keepalive, three
	// silent intervals end the session and the agent subscribes again.
	var silence *time.Timer
	var silentFor time.Duration
	var stale atomic.Bool
	defer func() {
		if silence != nil {
			silence.Stop()
		}
	}()
	for first := true; stream.Receive(); first = false {
		if first {
			a.sessions.Add(1)
		}
		if silence != nil {
			silence.Reset(silentFor)
		}
		switch m := stream.Msg().GetMessage().(type) {
		case *agentv1.SubscribeResponse_Config:
			queue.push(work{config: m.Config})
		case *agentv1.SubscribeResponse_Command:
			queue.push(work{command: m.Command})
		case *agentv1.SubscribeResponse_Cancel:
			a.cancel(ctx, c, queue, m.Cancel.GetId())
		case *agentv1.SubscribeResponse_Keepalive:
			if interval := m.Keepalive.GetInterval().AsDuration(); silence == nil && interval > 0 {
				silentFor = 3 * interval
				silence = time.AfterFunc(silentFor, func() { stale.Store(true); cancel() })
			}
		}
	}
	if stale.Load() {
		return fmt.Errorf("the stream was silent for %s, three keepalive intervals", silentFor)
	}
	if err := stream.Err(); err != nil {
		return err
	}
	return errors.New("the gateway closed the stream")
}

// heartbeat reports every Heartbeat until ctx ends or the returned stop is
// called. It runs on a timer, not a goroutine of its own: a fleet of
// simulated agents in one process would otherwise hold a parked stack per
// device.
func (a *Agent) heartbeat(ctx context.Context, c agentv1connect.AgentServiceClient) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	defer mu.Unlock()
	// The first beat comes between half an interval and one and a half,
	// at random, so that a fleet that reconnected at once does not beat in
	// step ever after.
	first := a.opts.Heartbeat/2 + time.Duration(rand.Int64N(int64(a.opts.Heartbeat)))
	t = time.AfterFunc(first, func() {
		if _, err := c.ReportStatus(ctx, connect.NewRequest(&agentv1.ReportStatusRequest{ObservedGeneration: a.state.AppliedGeneration()})); err == nil {
			a.heartbeats.Add(1)
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped && ctx.Err() == nil {
			t.Reset(a.opts.Heartbeat)
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

func (a *Agent) apply(ctx context.Context, c agentv1connect.AgentServiceClient, cfg *agentv1.DesiredConfig) {
	facts := a.platform.Apply(ctx, cfg)
	if facts.DeviceInfo == nil {
		facts.DeviceInfo = a.platform.Info()
	}
	TrimFacts(facts)
	// A rollout waits for this report, so a gateway that could not take
	// it now gets it again; until it does, the applied generation is not
	// saved, and the next session has the gateway send the configuration
	// again.
	err := a.retry(ctx, func() error {
		_, err := c.ReportStatus(ctx, connect.NewRequest(&agentv1.ReportStatusRequest{ObservedGeneration: cfg.GetGeneration(), Facts: facts}))
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			a.log.Error(err, "Reporting status")
		}
		return
	}
	digest := cfg.GetConfigurationsDigest()
	if cfg.GetConfigurationsHeld() {
		digest = a.state.AppliedDigest()
	}
	if err := a.state.SetConfigGeneration(cfg.GetGeneration(), digest); err != nil {
		a.log.Error(err, "Saving state")
	}
}

// work runs what the stream delivered, one item after the other, until the
// session ends. Commands run under lifetime, so one that started finishes.
func (a *Agent) work(session, lifetime context.Context, c agentv1connect.AgentServiceClient, q *workQueue) {
	for {
		w, ok := q.next(session)
		if !ok {
			return
		}
		if w.config != nil {
			a.apply(session, c, w.config)
			continue
		}
		a.run(session, lifetime, c, w.command)
		q.done()
	}
}

// run runs a command at most once, under runCtx, and reports it under ctx.
// It journals the command as started before running it: a command found
// started after a restart was interrupted by it (a Restart by its own
// reboot) and is reported, not run again. A redelivered command that
// finished is reported again, which the gateway treats as a repeat.
func (a *Agent) run(ctx, runCtx context.Context, c agentv1connect.AgentServiceClient, cmd *agentv1.Command) {
	id := cmd.GetId()
	res, known := a.recorded(id)
	if !known {
		if err := a.state.MarkStarted(id, cmd.GetAction()); err != nil {
			// Running without a journal could run it twice: refuse.
			res = Result{Code: CodeUnknown, Message: fmt.Sprintf("the agent could not journal the command, so did not run it: %v", err)}
		} else if exec := a.platform.Executors()[cmd.GetAction()]; exec != nil {
			res = exec(runCtx, cmd)
		} else {
			res = Result{Code: CodeUnimplemented, Message: fmt.Sprintf("%s is not supported on this platform", cmd.GetAction())}
		}
		if err := a.state.MarkCompleted(id, res); err != nil {
			a.log.Error(err, "Saving state")
		}
		if o, ok := a.platform.(Observer); ok {
			// What the command changed shows in the Device's status.
			if _, err := c.ReportStatus(ctx, connect.NewRequest(&agentv1.ReportStatusRequest{
				ObservedGeneration: a.state.AppliedGeneration(), Facts: o.Facts()})); err != nil && ctx.Err() == nil {
				a.log.Error(err, "Reporting status")
			}
		}
	}
	// Commands run one after the other, in the order they came; their
	// results are reported without holding up the next one.
	go a.report(ctx, c, completion(id, res))
}

// recorded is the journal's answer for a command: its result if it
// finished, or the outcome of an interruption if it began and never
// finished (which is then recorded as its result).
func (a *Agent) recorded(id string) (Result, bool) {
	if done, ok := a.state.Completion(id); ok {
		return Result{Code: done.Code, Message: done.Message}, true
	}
	started, ok := a.state.StartedOnly(id)
	if !ok {
		return Result{}, false
	}
	res := interrupted(started.Action)
	if err := a.state.MarkCompleted(id, res); err != nil {
		a.log.Error(err, "Saving state")
	}
	return res, true
}

// interrupted is the result of a command the agent began and did not
// finish because it stopped. A Restart stops the agent by rebooting: that
// is its success.
func interrupted(action string) Result {
	if action == "Restart" {
		return Result{Code: CodeOK, Message: "Restarted"}
	}
	return Result{Code: CodeAborted, Message: fmt.Sprintf("%s was interrupted: the agent stopped while running it and did not run it again", action)}
}

// cancel withdraws a command the gateway no longer wants run. One still
// waiting is dropped and reported Canceled; one running or finished keeps
// its result; one the agent never saw is recorded Canceled, so that it is
// never run should it still arrive.
func (a *Agent) cancel(ctx context.Context, c agentv1connect.AgentServiceClient, q *workQueue, id string) {
	waiting, running := q.withdraw(id)
	if running {
		return // its result follows when it finishes
	}
	res, known := a.recorded(id)
	if waiting || !known {
		res = Result{Code: CodeCanceled, Message: "Canceled before it started"}
		if err := a.state.MarkCompleted(id, res); err != nil {
			a.log.Error(err, "Saving state")
		}
	}
	go a.report(ctx, c, completion(id, res))
}

func completion(id string, res Result) *agentv1.CompleteCommandRequest {
	outcome := agentv1.Outcome_OUTCOME_SUCCEEDED
	if res.Code != CodeOK {
		outcome = agentv1.Outcome_OUTCOME_FAILED
	}
	return &agentv1.CompleteCommandRequest{CommandId: id, Outcome: outcome, Code: res.Code, Message: res.Message, Steps: res.Steps}
}

// report sends a result until the gateway acknowledges it or says it can
// never take it. If the session ends first, the gateway sends the command
// again on reconnect, and the journaled result is reported then.
func (a *Agent) report(ctx context.Context, c agentv1connect.AgentServiceClient, req *agentv1.CompleteCommandRequest) {
	err := a.retry(ctx, func() error {
		_, err := c.CompleteCommand(ctx, connect.NewRequest(req))
		return err
	})
	if err != nil && connect.CodeOf(err) != connect.CodeFailedPrecondition && ctx.Err() == nil {
		a.log.Error(err, "The gateway refused a command result", "command", req.GetCommandId())
	}
}

// retry calls until the call succeeds, fails in a way that the same
// request would fail again, or ctx ends, backing off in between.
func (a *Agent) retry(ctx context.Context, call func() error) error {
	wait := minBackoff
	for {
		err := call()
		if err == nil {
			return nil
		}
		switch connect.CodeOf(err) {
		case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeUnknown, connect.CodeCanceled,
			connect.CodeResourceExhausted, connect.CodeAborted:
			// The gateway could not record it now, or the call broke (a
			// gateway that stops cancels its calls): try again. Internal
			// is a gateway bug that the same request would hit again.
		default:
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, a.opts.MaxBackoff)
	}
}

// renewIfDue renews the certificate once two thirds of its life are gone.
func (a *Agent) renewIfDue(ctx context.Context) error {
	cert, err := a.state.Certificate()
	if err != nil {
		return err
	}
	life := cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore)
	if time.Until(cert.Leaf.NotAfter) > life/3 {
		return nil
	}
	return a.Renew(ctx)
}

// Renew replaces the agent's certificate and key with new ones.
func (a *Agent) Renew(ctx context.Context) error {
	c, tr, err := a.client(true)
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	keyPEM, csrPEM, err := a.state.NewKeyAndCSR()
	if err != nil {
		return err
	}
	resp, err := c.RenewCertificate(ctx, connect.NewRequest(&agentv1.RenewCertificateRequest{CsrPem: string(csrPEM)}))
	if err != nil {
		return err
	}
	return a.state.StoreCredentials(keyPEM, []byte(resp.Msg.GetCertificatePem()), nil)
}

// Client is a client of the gateway that presents the agent's certificate,
// for callers that speak the protocol directly. Call the returned function
// when done.
func (a *Agent) Client() (agentv1connect.AgentServiceClient, func(), error) {
	c, tr, err := a.client(true)
	if err != nil {
		return nil, nil, err
	}
	return c, tr.CloseIdleConnections, nil
}
