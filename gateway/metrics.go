package gateway

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kubemdm/kubemdm/api/agent/v1/agentv1connect"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// The gateway's metrics, on the controller-runtime registry that the
// manager serves. No label names a device: a fleet of 100,000 must not
// make 100,000 series.
var (
	rpcsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubemdm_gateway_requests_total",
		Help: "Agent protocol calls answered, by procedure and Connect code (ok for none).",
	}, []string{"procedure", "code"})
	rpcSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kubemdm_gateway_request_duration_seconds",
		Help:    "Time to answer a unary agent protocol call, by procedure.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
	}, []string{"procedure"})
	streamsOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kubemdm_gateway_streams",
		Help: "Subscribe streams this gateway replica holds open.",
	})
	enrollmentsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubemdm_enrollments_total",
		Help: "Enrollments answered, by result: ok, or the Connect code of the refusal.",
	}, []string{"result"})
	commandsDelivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubemdm_commands_delivered_total",
		Help: "Commands recorded Delivered to a device, by action.",
	}, []string{"action"})
	commandsCompleted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubemdm_commands_completed_total",
		Help: "Commands that ended on a device, by action and result (Succeeded, Failed, Canceled); expired ones are kubemdm_commands_expired_total.",
	}, []string{"action", "result"})
	// From a command's queuing: seconds to weeks, for a phone in a drawer.
	commandBuckets     = prometheus.ExponentialBuckets(0.05, 4, 12)
	commandDelivered   = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kubemdm_command_delivery_seconds", Help: "Time from a command's queuing to its delivery, by action.", Buckets: commandBuckets}, []string{"action"})
	commandCompletedIn = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kubemdm_command_completion_seconds", Help: "Time from a command's queuing to its result, by action and result.", Buckets: commandBuckets}, []string{"action", "result"})
	apiserverWrites    = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubemdm_gateway_apiserver_writes_total",
		Help: "Writes the gateway sent to the apiserver, by kind, verb and subresource.",
	}, []string{"kind", "verb", "subresource"})
	presenceFlushes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubemdm_presence_flushes_total",
		Help: "Presence writes (lastSeen, Connected) of the gateway, by result (ok, error).",
	}, []string{"result"})
	tlsHandshakes = newHandshakeCounter()
)

// handshakeResults are the results of kubemdm_gateway_tls_handshakes_total.
var handshakeResults = []string{"ok", "resumed", "closed", "error", "timeout", "unserved"}

// newHandshakeCounter builds kubemdm_gateway_tls_handshakes_total with
// every result from the start, so that an alert on a rate sees 0, not no
// data.
func newHandshakeCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubemdm_gateway_tls_handshakes_total",
		Help: "TLS handshakes on the agent listener, by result: ok (a full handshake, handed to the server), resumed (a session resumed, handed to the server), closed (the peer hung up before its hello), error (not TLS, or a certificate refused), timeout, or unserved (handshaken, then closed because the gateway did not serve within a minute).",
	}, []string{"result"})
	for _, result := range handshakeResults {
		c.WithLabelValues(result)
	}
	return c
}

func init() {
	ctrlmetrics.Registry.MustRegister(rpcsTotal, rpcSeconds, streamsOpen, enrollmentsTotal, commandsDelivered, commandsCompleted,
		commandDelivered, commandCompletedIn, apiserverWrites, presenceFlushes, tlsHandshakes)
}

// codeLabel is a call's Connect code as a label.
func codeLabel(err error) string {
	if err == nil {
		return "ok"
	}
	return connect.CodeOf(err).String()
}

// metricsInterceptor counts the calls of the agent protocol and times the
// unary ones; a stream's life says nothing about the gateway's speed.
type metricsInterceptor struct{}

func (metricsInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		began := time.Now()
		res, err := next(ctx, req)
		procedure := req.Spec().Procedure
		rpcsTotal.WithLabelValues(procedure, codeLabel(err)).Inc()
		rpcSeconds.WithLabelValues(procedure).Observe(time.Since(began).Seconds())
		if procedure == agentv1connect.AgentServiceEnrollProcedure {
			enrollmentsTotal.WithLabelValues(codeLabel(err)).Inc()
		}
		return res, err
	}
}

func (metricsInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (metricsInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		streamsOpen.Inc()
		defer streamsOpen.Dec()
		err := next(ctx, conn)
		// A stream ends when the agent goes or the gateway stops; neither
		// is a failure of the call.
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		rpcsTotal.WithLabelValues(conn.Spec().Procedure, codeLabel(err)).Inc()
		return err
	}
}

// observeRow counts a row the result writer moved to phase: delivered, or
// completed with a result.
func observeRow(a *mdmv1alpha1.DeviceAction, row *mdmv1alpha1.DeviceResult, phase mdmv1alpha1.DeviceCommandPhase, at time.Time) {
	action := string(a.Spec.Action)
	q := queuedAt(a, row)
	if phase == mdmv1alpha1.CommandDelivered {
		commandsDelivered.WithLabelValues(action).Inc()
		if !q.IsZero() {
			commandDelivered.WithLabelValues(action).Observe(at.Sub(q).Seconds())
		}
		return
	}
	commandsCompleted.WithLabelValues(action, string(phase)).Inc()
	if !q.IsZero() {
		commandCompletedIn.WithLabelValues(action, string(phase)).Observe(at.Sub(q).Seconds())
	}
}

// queuedAt is when a command was queued for the device: its row's time,
// or the action's, which is finer.
func queuedAt(a *mdmv1alpha1.DeviceAction, row *mdmv1alpha1.DeviceResult) time.Time {
	if a.Status.QueuedAt != nil && (row.QueuedAt == nil || !a.Status.QueuedAt.Time.Before(row.QueuedAt.Time)) {
		return a.Status.QueuedAt.Time
	}
	if row.QueuedAt != nil {
		return row.QueuedAt.Time
	}
	return time.Time{}
}

// countingClient counts what the gateway writes to the apiserver, by kind
// and verb.
type countingClient struct {
	client.Client
}

func (c countingClient) count(obj any, verb, sub string) {
	kind := "unknown"
	switch o := obj.(type) {
	case runtime.Object:
		if gvk, err := apiutil.GVKForObject(o, c.Scheme()); err == nil {
			kind = gvk.Kind
		}
	case interface{ GetKind() string }:
		kind = o.GetKind()
	}
	apiserverWrites.WithLabelValues(kind, verb, sub).Inc()
}

func (c countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.count(obj, "create", "")
	return c.Client.Create(ctx, obj, opts...)
}

func (c countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.count(obj, "update", "")
	return c.Client.Update(ctx, obj, opts...)
}

func (c countingClient) Patch(ctx context.Context, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
	c.count(obj, "patch", "")
	return c.Client.Patch(ctx, obj, p, opts...)
}

func (c countingClient) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	c.count(obj, "apply", "")
	return c.Client.Apply(ctx, obj, opts...)
}

func (c countingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	c.count(obj, "delete", "")
	return c.Client.Delete(ctx, obj, opts...)
}

func (c countingClient) Status() client.SubResourceWriter {
	return countingStatus{c.Client.Status(), c}
}

type countingStatus struct {
	client.SubResourceWriter
	c countingClient
}

func (s countingStatus) Create(ctx context.Context, obj client.Object, sub client.Object, opts ...client.SubResourceCreateOption) error {
	s.c.count(obj, "create", "status")
	return s.SubResourceWriter.Create(ctx, obj, sub, opts...)
}

func (s countingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	s.c.count(obj, "update", "status")
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}

func (s countingStatus) Patch(ctx context.Context, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
	s.c.count(obj, "patch", "status")
	return s.SubResourceWriter.Patch(ctx, obj, p, opts...)
}

func (s countingStatus) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	s.c.count(obj, "apply", "status")
	return s.SubResourceWriter.Apply(ctx, obj, opts...)
}
