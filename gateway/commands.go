package gateway

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/index"
)

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

// openCommand is a command the device has yet to receive or complete, with
// its row.
type openCommand struct {
	action *mdmv1alpha1.DeviceAction
	row    *mdmv1alpha1.DeviceResult
}

// openCommands lists, from the cache index, the commands the device has yet
// to receive or complete, in the order the device must run them. The actions
// are the cache's own objects, not copies (an action can hold 1,000 rows and
// every stream of its devices reads it): read them, never change them.
func (s *Server) openCommands(ctx context.Context, device *mdmv1alpha1.Device) ([]openCommand, error) {
	list := &mdmv1alpha1.DeviceActionList{}
	if err := s.cache.List(ctx, list, client.InNamespace(device.Namespace), client.MatchingFields{index.OpenCommands: device.Name},
		client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]openCommand, 0, len(list.Items))
	for i := range list.Items {
		a := &list.Items[i]
		if !now.Before(a.Deadline()) {
			continue
		}
		if row := openRowFor(a, device); row != nil {
			out = append(out, openCommand{action: a, row: row})
		}
	}
	slices.SortFunc(out, func(x, y openCommand) int { return mdmv1alpha1.CompareQueueOrder(x.action, y.action) })
	return out, nil
}

// openRowFor returns the device's row of an action while it is open and was
// queued for this very Device: one deleted and created again under the same
// name is another device. Rows from before deviceUID was recorded match by
// name.
func openRowFor(a *mdmv1alpha1.DeviceAction, device *mdmv1alpha1.Device) *mdmv1alpha1.DeviceResult {
	_, row := rowOf(a, device.Name)
	if row == nil || !row.Phase.Open() || (row.DeviceUID != "" && row.DeviceUID != device.UID) {
		return nil
	}
	return row
}

// rowOf returns the device's row of an action. The controller writes rows
// in name order, so a binary search finds it in an action of 1,000 rows;
// rows in another order are scanned.
func rowOf(a *mdmv1alpha1.DeviceAction, device string) (int, *mdmv1alpha1.DeviceResult) {
	rows := a.Status.Devices
	if i, ok := slices.BinarySearchFunc(rows, device, func(r mdmv1alpha1.DeviceResult, name string) int {
		return strings.Compare(r.Name, name)
	}); ok {
		return i, &rows[i]
	}
	for i := range a.Status.Devices {
		if a.Status.Devices[i].Name == device {
			return i, &a.Status.Devices[i]
		}
	}
	return -1, nil
}

// delivered records that a Queued row's command went out.
func (s *Server) delivered(c openCommand, device string) {
	if c.row.Phase == mdmv1alpha1.CommandQueued {
		s.results.enqueue(client.ObjectKeyFromObject(c.action), rowUpdate{device: device, phase: mdmv1alpha1.CommandDelivered, at: s.now()})
	}
}
