package gateway

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"connectrpc.com/connect"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/index"
)

const maxResultMessage = 1024

// CompleteCommand records a command's outcome in the device's row. It answers
// once the row is written, so an acknowledged result is never lost; a repeat
// of a recorded result changes nothing.
func (s *Server) CompleteCommand(ctx context.Context, req *connect.Request[agentv1.CompleteCommandRequest]) (*connect.Response[agentv1.CompleteCommandResponse], error) {
	device, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	msg := req.Msg
	update, err := resultUpdate(device.Name, msg)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	// The cache's own object, read and never changed: a copy of an action
	// of 1,000 rows for each of its 1,000 results made a fan-out quadratic.
	list := &mdmv1alpha1.DeviceActionList{}
	if err := s.cache.List(ctx, list, client.InNamespace(device.Namespace), client.MatchingFields{index.ActionUID: msg.GetCommandId()},
		client.UnsafeDisableDeepCopy); err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	if len(list.Items) != 1 {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no command %q", msg.GetCommandId()))
	}
	action := &list.Items[0]
	if update.phase == mdmv1alpha1.CommandCanceled && !action.Spec.Cancel && action.DeletionTimestamp.IsZero() {
		// Only a cancel makes a row Canceled; a device that dropped a
		// command nobody canceled failed it.
		update.phase = mdmv1alpha1.CommandFailed
	}
	_, row := rowOf(action, device.Name)
	if row == nil || (row.DeviceUID != "" && row.DeviceUID != device.UID) {
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("command %q is not addressed to this device", msg.GetCommandId()))
	}
	switch {
	case row.Phase == update.phase:
		return connect.NewResponse(&agentv1.CompleteCommandResponse{}), nil
	case isFinal(row.Phase):
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("the command is already %s", row.Phase))
	case !row.Phase.Open():
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("the command is %s, not yet delivered", row.Phase))
	}
	update.done = make(chan error, 1)
	update.at = s.now()
	s.results.enqueue(client.ObjectKeyFromObject(action), update)
	select {
	case err := <-update.done:
		var overtaken *overtakenError
		switch {
		case errors.As(err, &overtaken):
			return nil, connect.NewError(connect.CodeFailedPrecondition, err)
		case errors.Is(err, errActionGone):
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no command %q: %w", msg.GetCommandId(), err))
		case err != nil:
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("recording the result: %w", err))
		}
	case <-ctx.Done():
		return nil, connect.NewError(connect.CodeCanceled, ctx.Err())
	}
	return connect.NewResponse(&agentv1.CompleteCommandResponse{}), nil
}

func resultUpdate(device string, msg *agentv1.CompleteCommandRequest) (rowUpdate, error) {
	if msg.GetCommandId() == "" || len(msg.GetCommandId()) > 64 {
		return rowUpdate{}, errors.New("command_id is required")
	}
	if !utf8.ValidString(msg.GetMessage()) {
		return rowUpdate{}, errors.New("message must be UTF-8")
	}
	if c := msg.GetCode(); c < 0 || c > 16 {
		return rowUpdate{}, fmt.Errorf("code %d is not a google.rpc.Code (0-16)", c)
	}
	u := rowUpdate{device: device, code: msg.GetCode(), message: resultMessage(msg)}
	switch msg.GetOutcome() {
	case agentv1.Outcome_OUTCOME_SUCCEEDED:
		if msg.GetCode() != 0 {
			return rowUpdate{}, errors.New("a succeeded command has code 0")
		}
		u.phase = mdmv1alpha1.CommandSucceeded
	case agentv1.Outcome_OUTCOME_FAILED:
		u.phase = mdmv1alpha1.CommandFailed
		switch msg.GetCode() {
		case 0:
			u.code = 2 // google.rpc.Code UNKNOWN: a failure must not read as OK
		case mdmv1alpha1.CodeCanceled:
			u.phase = mdmv1alpha1.CommandCanceled // dropped before it started
		}
	default:
		return rowUpdate{}, errors.New("outcome must be OUTCOME_SUCCEEDED or OUTCOME_FAILED")
	}
	return u, nil
}

// resultMessage is the agent's message, followed by the steps that ran, so
// that a failed step of a multi-step command is named in the row.
func resultMessage(msg *agentv1.CompleteCommandRequest) string {
	out := msg.GetMessage()
	for _, st := range msg.GetSteps() {
		line := st.GetName() + ": " + map[agentv1.Outcome]string{
			agentv1.Outcome_OUTCOME_SUCCEEDED: "done", agentv1.Outcome_OUTCOME_FAILED: "failed",
		}[st.GetOutcome()]
		if st.GetMessage() != "" {
			line += " (" + st.GetMessage() + ")"
		}
		if out != "" {
			out += "; "
		}
		out += line
	}
	if len(out) > maxResultMessage {
		out = out[:maxResultMessage]
		for !utf8.ValidString(out) {
			out = out[:len(out)-1]
		}
	}
	return out
}
