package gateway

import (
	"context"
	"errors"
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
// its row. cancel means the device holds it and must drop it: its action
// was canceled after the row was Delivered.
type openCommand struct {
	action *mdmv1alpha1.DeviceAction
	row    *mdmv1alpha1.DeviceResult
	cancel bool
}

// cancelKey is what a stream remembers it sent for a CancelCommand.
func cancelKey(id string) string { return "cancel/" + id }

// openCommands lists, from the cache index, the commands the device has yet
// to receive or complete, in the order the device must run them, and the
// delivered ones it must drop. A canceled action's rows that were not
// delivered are never sent: its controller cancels them. The actions are
// the cache's own objects, not copies (an action can hold 1,000 rows and
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
		row := openRowFor(a, device)
		if row == nil {
			continue
		}
		canceled := a.Spec.Cancel || !a.DeletionTimestamp.IsZero()
		if canceled && row.Phase != mdmv1alpha1.CommandDelivered {
			continue
		}
		out = append(out, openCommand{action: a, row: row, cancel: canceled})
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

// markDelivered records, before the commands go out, that their Queued rows
// are Delivered, and waits until that is written. Recording first is what
// makes a cancel safe: a row the controller canceled meanwhile fails the
// write's test and its command is never sent; a row recorded Delivered is
// one the controller waits on and the gateway tells the device to drop.
// The answer holds, per command, nil to send it, errOvertaken not to, or
// the write's error.
func (s *Server) markDelivered(ctx context.Context, cmds []openCommand, device string) []error {
	out := make([]error, len(cmds))
	waits := make([]chan error, len(cmds))
	at := s.now()
	for i, c := range cmds {
		if c.row.Phase != mdmv1alpha1.CommandQueued {
			continue
		}
		waits[i] = make(chan error, 1)
		s.results.enqueue(client.ObjectKeyFromObject(c.action), rowUpdate{device: device, phase: mdmv1alpha1.CommandDelivered, at: at, done: waits[i]})
	}
	for i, w := range waits {
		if w == nil {
			continue
		}
		select {
		case err := <-w:
			var overtaken *overtakenError
			if errors.As(err, &overtaken) || errors.Is(err, errActionGone) {
				err = errOvertaken
			}
			out[i] = err
		case <-ctx.Done():
			out[i] = ctx.Err()
		}
	}
	return out
}

// errOvertaken is a command whose row ended (canceled, expired) before it
// could be recorded Delivered: it is not sent.
var errOvertaken = errors.New("the command's row ended before it was delivered")
