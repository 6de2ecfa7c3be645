package gateway

import (
	"context"
	"errors"
	"slices"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// streamKeepalive is how often an open stream counts as a heartbeat and
// carries a Keepalive, so that an agent can tell a quiet stream from a dead
// one (a NAT that dropped the connection sends no FIN).
const streamKeepalive = 30 * time.Second

var (
	errSlowStream     = connect.NewError(connect.CodeResourceExhausted, errors.New("the stream fell behind; reconnect to receive everything again"))
	errDeviceReleased = connect.NewError(connect.CodePermissionDenied, errors.New("the device is no longer managed"))
)

// desiredConfig renders a Device's spec for its agent, numbered by the
// Device's generation.
func desiredConfig(d *mdmv1alpha1.Device) *agentv1.DesiredConfig {
	cfg := &agentv1.DesiredConfig{
		Generation: d.Generation,
		Owner:      d.Spec.Owner,
		Attributes: d.Spec.Attributes,
		State:      string(d.Spec.State),
	}
	if k := d.Spec.Kiosk; k != nil {
		cfg.Kiosk = &agentv1.Kiosk{Enabled: k.Enabled, App: k.App}
	}
	if l := d.Spec.LostMode; l != nil {
		cfg.LostMode = &agentv1.LostMode{Enabled: l.Enabled, Message: l.Message, PhoneNumber: l.PhoneNumber, Footnote: l.Footnote}
	}
	configs := slices.Clone(d.Spec.Configurations)
	slices.SortStableFunc(configs, func(a, b mdmv1alpha1.ConfigurationAssignment) int { return int(a.Priority - b.Priority) })
	for _, c := range configs {
		cfg.Configurations = append(cfg.Configurations, &agentv1.Configuration{Name: c.Name, Priority: c.Priority, Excluded: c.Excluded})
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
	sub := s.hub.add(key, req.Msg.GetConfigGeneration())
	defer s.hub.remove(key, sub)
	s.presence.connected(key, device.UID)
	defer s.presence.disconnected(key, device.UID)

	// What the device missed while away: the configuration if it is newer,
	// then every open command. Anything that arrives meanwhile through the
	// informers is de-duplicated by the subscriber.
	sub.offerConfig(desiredConfig(device))
	if err := s.deliverOpen(ctx, device, sub.offerCommand); err != nil {
		return connect.NewError(connect.CodeUnavailable, err)
	}

	keepalive := &agentv1.SubscribeResponse{Message: &agentv1.SubscribeResponse_Keepalive{
		Keepalive: &agentv1.Keepalive{Interval: durationpb.New(streamKeepalive)}}}
	seen := time.NewTicker(streamKeepalive)
	defer seen.Stop()
	sentFirst := false
	for {
		// The first Keepalive follows what the device missed, so that an
		// agent learns the interval at once.
		if !sentFirst && len(sub.ch) == 0 {
			if err := stream.Send(keepalive); err != nil {
				return err
			}
			sentFirst = true
		}
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
		case msg := <-sub.ch:
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
	}
}

// Poll answers with the configuration if newer and the open commands.
func (s *Server) Poll(ctx context.Context, req *connect.Request[agentv1.PollRequest]) (*connect.Response[agentv1.PollResponse], error) {
	device, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	s.presence.seen(client.ObjectKeyFromObject(device), device.UID)
	resp := &agentv1.PollResponse{}
	if device.Generation > req.Msg.GetConfigGeneration() {
		resp.Config = desiredConfig(device)
	}
	err = s.deliverOpen(ctx, device, func(cmd *agentv1.Command) bool {
		resp.Commands = append(resp.Commands, cmd)
		return true
	})
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return connect.NewResponse(resp), nil
}

// deliverOpen hands every open command of the device to send and marks the
// Queued ones Delivered.
func (s *Server) deliverOpen(ctx context.Context, device *mdmv1alpha1.Device, send func(*agentv1.Command) bool) error {
	actions, err := s.openCommands(ctx, device)
	if err != nil {
		return err
	}
	for _, a := range actions {
		s.offer(a, device.Name, send)
	}
	return nil
}

// offer sends the action's command to the device if its row is open, and
// records the delivery of a Queued row.
func (s *Server) offer(a *mdmv1alpha1.DeviceAction, device string, send func(*agentv1.Command) bool) {
	_, row := rowOf(a, device)
	if row == nil || (row.Phase != mdmv1alpha1.CommandQueued && row.Phase != mdmv1alpha1.CommandDelivered) {
		return
	}
	if !s.now().Before(a.Deadline()) {
		return
	}
	if send(commandFor(a)) && row.Phase == mdmv1alpha1.CommandQueued {
		s.results.enqueue(client.ObjectKeyFromObject(a), rowUpdate{device: device, phase: mdmv1alpha1.CommandDelivered, at: s.now()})
	}
}

// onActionChange pushes the commands of a new or changed DeviceAction to the
// devices holding a stream to this replica.
func (s *Server) onActionChange(a *mdmv1alpha1.DeviceAction) {
	for _, name := range openCommandDevices(a) {
		for _, sub := range s.hub.get(client.ObjectKey{Namespace: a.Namespace, Name: name}) {
			s.offer(a, name, sub.offerCommand)
		}
	}
}

// onDeviceChange pushes a new configuration, or ends the streams of a device
// that is no longer managed.
func (s *Server) onDeviceChange(d *mdmv1alpha1.Device) {
	key := client.ObjectKeyFromObject(d)
	subs := s.hub.get(key)
	if len(subs) == 0 {
		return
	}
	if !d.Status.Phase.Managed() {
		s.closeStreams(key)
		return
	}
	cfg := desiredConfig(d)
	for _, sub := range subs {
		sub.offerConfig(cfg)
	}
}

// closeStreams ends the streams of a device that was released or deleted.
func (s *Server) closeStreams(key types.NamespacedName) {
	for _, sub := range s.hub.get(key) {
		sub.close(errDeviceReleased)
	}
}
