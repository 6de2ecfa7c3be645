package gateway

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// IndexOpenCommands finds DeviceActions by the devices that have a command
// still to deliver or to complete (rows Queued or Delivered).
const IndexOpenCommands = "status.devices.open"

func openCommandDevices(o client.Object) []string {
	a := o.(*mdmv1alpha1.DeviceAction)
	if a.Spec.DryRun || a.Status.Phase.Finished() {
		return nil
	}
	var out []string
	for _, row := range a.Status.Devices {
		if row.Phase == mdmv1alpha1.CommandQueued || row.Phase == mdmv1alpha1.CommandDelivered {
			out = append(out, row.Name)
		}
	}
	return out
}

// commandFor is the agent's view of a DeviceAction. The command's id is the
// action's UID: a device answers only its own row, so the UID is enough.
func commandFor(a *mdmv1alpha1.DeviceAction) *agentv1.Command {
	cmd := &agentv1.Command{
		Id:       string(a.UID),
		Action:   string(a.Spec.Action),
		Deadline: timestamppb.New(a.Deadline()),
	}
	if p := a.Spec.Parameters; p != nil {
		cmd.Parameters = &agentv1.CommandParameters{
			KioskApp:          p.KioskApp,
			OsVersion:         p.OSVersion,
			Configurations:    p.Configurations,
			DeprovisionReason: string(p.DeprovisionReason),
		}
		if m := p.Message; m != nil {
			cmd.Parameters.MessageTitle, cmd.Parameters.MessageBody = m.Title, m.Body
		}
		if l := p.LostMode; l != nil {
			cmd.Parameters.LostMode = &agentv1.LostMode{Enabled: true, Message: l.Message, PhoneNumber: l.PhoneNumber, Footnote: l.Footnote}
		}
	}
	return cmd
}

// openCommands lists the commands a device has yet to deliver or complete,
// from the cache index.
func (s *Server) openCommands(ctx context.Context, device *mdmv1alpha1.Device) ([]*mdmv1alpha1.DeviceAction, error) {
	list := &mdmv1alpha1.DeviceActionList{}
	if err := s.cache.List(ctx, list, client.InNamespace(device.Namespace), client.MatchingFields{IndexOpenCommands: device.Name}); err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]*mdmv1alpha1.DeviceAction, 0, len(list.Items))
	for i := range list.Items {
		if a := &list.Items[i]; now.Before(a.Deadline()) {
			out = append(out, a)
		}
	}
	return out, nil
}

// rowOf returns the device's row of an action.
func rowOf(a *mdmv1alpha1.DeviceAction, device string) (int, *mdmv1alpha1.DeviceResult) {
	for i := range a.Status.Devices {
		if a.Status.Devices[i].Name == device {
			return i, &a.Status.Devices[i]
		}
	}
	return -1, nil
}
