package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/index"
)

// streamKeepalive is how often an open stream counts as a heartbeat and
// carries a Keepalive, so that an agent can tell a quiet stream from a dead
// one (a NAT that dropped the connection sends no FIN).
const streamKeepalive = 30 * time.Second

var (
	errDeviceReleased = connect.NewError(connect.CodePermissionDenied, errors.New("the device is no longer managed"))
)

// desiredConfig renders a Device's own spec for its agent, numbered by the
// Device's generation; render adds its configurations.
func desiredConfig(d *mdmv1alpha1.Device) *agentv1.DesiredConfig {
	cfg := &agentv1.DesiredConfig{
		Generation: d.Generation,
		Owner:      d.Spec.Owner,
		Attributes: d.Spec.Attributes,
		State:      string(cmp.Or(d.Spec.State, mdmv1alpha1.DeviceStateActive)),
	}
	if k := d.Spec.Kiosk; k != nil {
		cfg.Kiosk = &agentv1.Kiosk{Enabled: k.Enabled, App: k.App}
	}
	if l := d.Spec.LostMode; l != nil {
		cfg.LostMode = &agentv1.LostMode{Enabled: l.Enabled, Message: l.Message, PhoneNumber: l.PhoneNumber, Footnote: l.Footnote}
	}
	return cfg
}

// Subscribe streams configuration and commands to an online device.
func (s *Server) Subscribe(ctx context.Context, req *connect.Request[agentv1.SubscribeRequest], stream *connect.ServerStream[agentv1.SubscribeResponse]) error {
	device, err := s.authenticate(ctx)
	if err != nil {
		return err
	}
	key := client.ObjectKeyFromObject(device)
	sub := s.hub.add(key, configVersion{req.Msg.GetConfigGeneration(), req.Msg.GetConfigurationsDigest()})
	defer s.hub.remove(key, sub)
	// What the device missed while away: the configuration if it differs
	// from what the agent holds (the subscriber starts with a render due),
	// then every open command, then a Keepalive so that the agent learns
	// the interval at once. An agent sent a configuration reports it
	// applied, and its report carries the opening, in one write instead of
	// two: the opening is recorded as awaiting that report before the
	// configuration goes out, so that a quick report finds it, and written
	// at once when there was nothing to send.
	s.presence.opened(device, true)
	// The stream lives for days and reads the Device afresh from the cache
	// whenever it wakes: it keeps only its identity, not the copy it was
	// authenticated with (3-4 KiB per stream, 40 MiB at 10,000).
	device = identityOf(device)
	out := &streamSender{server: s, device: device, sub: sub, send: stream.Send}
	defer s.presence.disconnected(key, device.UID)
	configSent, err := out.sendConfigDue(ctx)
	if !configSent {
		s.presence.reportNotDue(key, device.UID)
	}
	if err != nil {
		return err
	}
	for more := true; more; {
		if more, err = out.sendDue(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-sub.closed:
			return sub.err
		default:
		}
	}
	keepalive := &agentv1.SubscribeResponse{Message: &agentv1.SubscribeResponse_Keepalive{
		Keepalive: &agentv1.Keepalive{Interval: durationpb.New(streamKeepalive)}}}
	if err := stream.Send(keepalive); err != nil {
		return err
	}
	seen := time.NewTicker(streamKeepalive)
	defer seen.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.closed:
			return sub.err
		case <-seen.C:
			s.presence.seen(key, device.UID)
			if err := stream.Send(keepalive); err != nil {
				return err
			}
		case <-sub.wake:
			more, err := out.sendDue(ctx)
			if err != nil {
				return err
			}
			if more {
				sub.notify()
			}
		}
	}
}

// identityOf returns a Device that holds only d's namespace, name and UID:
// all that a stream needs of it between wake-ups.
func identityOf(d *mdmv1alpha1.Device) *mdmv1alpha1.Device {
	return &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: d.Namespace, Name: d.Name, UID: d.UID}}
}

// streamChunk is how many commands one stream sends before it reads the
// queue again.
const streamChunk = 32

// streamSender sends one stream what is due: a newer configuration and the
// open commands not yet sent on it, in queue order.
type streamSender struct {
	server *Server
	device *mdmv1alpha1.Device
	sub    *subscriber
	send   func(*agentv1.SubscribeResponse) error
}

// sendDue sends at most streamChunk commands and reports whether more are
// due.
func (o *streamSender) sendDue(ctx context.Context) (more bool, err error) {
	if _, err := o.sendConfigDue(ctx); err != nil {
		return false, err
	}
	open, err := o.server.openCommands(ctx, o.device)
	if err != nil {
		return false, connect.NewError(connect.CodeUnavailable, err)
	}
	still := make(map[string]bool, len(open))
	var due []openCommand
	for _, c := range open {
		id := string(c.action.UID)
		if c.cancel {
			id = cancelKey(id)
		}
		still[id] = true
		if o.sub.wasSent(id) {
			continue
		}
		// A long backlog goes out in chunks, so that the stream serves its
		// keepalive, notices a release or a closed connection, and reads
		// the queue afresh (rows expire, devices are replaced) in between.
		if len(due) == streamChunk {
			more = true
			break
		}
		due = append(due, c)
	}
	marked := o.server.markDelivered(ctx, due, o.device.Name)
	for i, c := range due {
		id := string(c.action.UID)
		msg := &agentv1.SubscribeResponse{Message: &agentv1.SubscribeResponse_Command{Command: commandFor(c.action)}}
		switch {
		case c.cancel:
			id = cancelKey(id)
			msg = &agentv1.SubscribeResponse{Message: &agentv1.SubscribeResponse_Cancel{Cancel: &agentv1.CancelCommand{Id: string(c.action.UID)}}}
		case errors.Is(marked[i], errOvertaken):
			continue
		case marked[i] != nil:
			return false, connect.NewError(connect.CodeUnavailable, fmt.Errorf("recording the delivery of command %s: %w", id, marked[i]))
		}
		// Send blocks while the agent's flow-control window is full.
		if err := o.send(msg); err != nil {
			return false, err
		}
		o.sub.markSent(id)
	}
	if !more {
		o.sub.keepSent(still)
	}
	return more, nil
}

// sendConfigDue renders the device's configuration from the cache, when a
// render is due, and sends it if the agent does not hold it; it reports
// whether it sent one.
func (o *streamSender) sendConfigDue(ctx context.Context) (bool, error) {
	if !o.sub.takeConfigDue() {
		return false, nil
	}
	d := &mdmv1alpha1.Device{}
	if err := o.server.cache.Get(ctx, client.ObjectKeyFromObject(o.device), d); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if d.UID != o.device.UID {
		return false, nil
	}
	cfg, err := o.server.render(ctx, d)
	if err != nil {
		return false, connect.NewError(connect.CodeUnavailable, err)
	}
	if !o.sub.shouldSend(cfg) {
		return false, nil
	}
	return true, o.send(&agentv1.SubscribeResponse{Message: &agentv1.SubscribeResponse_Config{Config: cfg}})
}

// Poll answers with the configuration if it changed, the open commands and the
// delivered ones to drop.
func (s *Server) Poll(ctx context.Context, req *connect.Request[agentv1.PollRequest]) (*connect.Response[agentv1.PollResponse], error) {
	device, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	s.presence.seen(client.ObjectKeyFromObject(device), device.UID)
	resp := &agentv1.PollResponse{}
	if cfg, err := s.render(ctx, device); err == nil && differs(cfg, configVersion{req.Msg.GetConfigGeneration(), req.Msg.GetConfigurationsDigest()}) {
		resp.Config = cfg
	}
	open, err := s.openCommands(ctx, device)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	marked := s.markDelivered(ctx, open, device.Name)
	for i, c := range open {
		switch {
		case c.cancel:
			resp.CanceledCommandIds = append(resp.CanceledCommandIds, string(c.action.UID))
		case errors.Is(marked[i], errOvertaken):
		case marked[i] != nil:
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("recording the delivery of command %s: %w", c.action.UID, marked[i]))
		default:
			resp.Commands = append(resp.Commands, commandFor(c.action))
		}
	}
	return connect.NewResponse(resp), nil
}

// onActionChange wakes the streams on this replica that have yet to carry
// an open command of a new or changed DeviceAction. The results of a large
// action update it many times; streams that already carried it stay asleep.
func (s *Server) onActionChange(a *mdmv1alpha1.DeviceAction) {
	id := string(a.UID)
	if a.Spec.Cancel || !a.DeletionTimestamp.IsZero() {
		id = cancelKey(id)
	}
	for _, name := range index.OpenCommandDevices(a) {
		for _, sub := range s.hub.get(client.ObjectKey{Namespace: a.Namespace, Name: name}) {
			if !sub.wasSent(id) {
				sub.notify()
			}
		}
	}
}

// onDeviceChange pushes a new configuration, or ends the streams of a device
// that is no longer managed, and has a stream here shown disconnected
// claimed again.
func (s *Server) onDeviceChange(old, d *mdmv1alpha1.Device) {
	key := client.ObjectKeyFromObject(d)
	subs := s.hub.get(key)
	if len(subs) == 0 {
		return
	}
	if !d.Status.Phase.Managed() {
		s.closeStreams(key)
		return
	}
	s.presence.observed(d)
	if !rendersDiffer(old, d) {
		return
	}
	for _, sub := range subs {
		sub.offerConfig()
	}
}

// rendersDiffer reports whether a Device's configuration may render
// differently after an update: a render reads its spec (the generation),
// its labels (the Configurations' selectors) and its UID (a staged
// rollout's admission), never its status. Most updates are status ones,
// the device's own reports among them; a render and a read of its
// commands for each would double the gateway's work during a push.
func rendersDiffer(old, d *mdmv1alpha1.Device) bool {
	return old == nil || old.Generation != d.Generation || old.UID != d.UID || !maps.Equal(old.Labels, d.Labels)
}

// onDeviceDelete ends the streams of a deleted Device. A deletion the watch
// missed arrives as a tombstone after a relist; its streams end all the same.
func (s *Server) onDeviceDelete(o any) {
	if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		if ns, name, err := toolscache.SplitMetaNamespaceKey(t.Key); err == nil {
			s.closeStreams(client.ObjectKey{Namespace: ns, Name: name})
		}
		return
	}
	if d, ok := o.(*mdmv1alpha1.Device); ok {
		s.closeStreams(client.ObjectKeyFromObject(d))
	}
}

// closeStreams ends the streams of a device that was released or deleted.
func (s *Server) closeStreams(key types.NamespacedName) {
	for _, sub := range s.hub.get(key) {
		sub.close(errDeviceReleased)
	}
}
