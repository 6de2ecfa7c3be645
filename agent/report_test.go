package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/go-logr/logr"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	"github.com/kubemdm/kubemdm/api/agent/v1/agentv1connect"
)

// flakyGateway answers CompleteCommand with the given errors, then OK.
type flakyGateway struct {
	agentv1connect.AgentServiceClient
	answers []error
	calls   int
}

func (g *flakyGateway) CompleteCommand(context.Context, *connect.Request[agentv1.CompleteCommandRequest]) (*connect.Response[agentv1.CompleteCommandResponse], error) {
	g.calls++
	if g.calls <= len(g.answers) {
		return nil, g.answers[g.calls-1]
	}
	return connect.NewResponse(&agentv1.CompleteCommandResponse{}), nil
}

func TestReportRetriesUntilAcknowledged(t *testing.T) {
	unavailable := connect.NewError(connect.CodeUnavailable, errors.New("recording the result: etcd is down"))
	for _, tc := range []struct {
		name    string
		answers []error
		calls   int
	}{
		{"acknowledged at once", nil, 1},
		{"the gateway could not write it twice", []error{unavailable, unavailable}, 3},
		{"a stream cut mid-call", []error{connect.NewError(connect.CodeUnknown, errors.New("EOF"))}, 2},
		{"the gateway stopped mid-call", []error{connect.NewError(connect.CodeCanceled, errors.New("context canceled"))}, 2},
		{"a gateway bug", []error{connect.NewError(connect.CodeInternal, errors.New("internal error"))}, 1},
		{"already recorded", []error{connect.NewError(connect.CodeFailedPrecondition, errors.New("already Succeeded"))}, 1},
		{"not this device's command", []error{connect.NewError(connect.CodePermissionDenied, errors.New("not addressed to this device"))}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Agent{opts: Options{MaxBackoff: time.Millisecond}, log: logr.Discard()}
			g := &flakyGateway{answers: tc.answers}
			a.report(context.Background(), g, &agentv1.CompleteCommandRequest{CommandId: "c1", Outcome: agentv1.Outcome_OUTCOME_SUCCEEDED})
			if g.calls != tc.calls {
				t.Errorf("%d calls, want %d", g.calls, tc.calls)
			}
		})
	}

	t.Run("gives up when the session ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		a := &Agent{opts: Options{MaxBackoff: time.Millisecond}, log: logr.Discard()}
		g := &flakyGateway{answers: []error{unavailable, unavailable, unavailable, unavailable}}
		cancel()
		a.report(ctx, g, &agentv1.CompleteCommandRequest{CommandId: "c1"})
		if g.calls != 1 {
			t.Errorf("%d calls after the session ended", g.calls)
		}
	})
}

func (g *flakyGateway) ReportStatus(context.Context, *connect.Request[agentv1.ReportStatusRequest]) (*connect.Response[agentv1.ReportStatusResponse], error) {
	g.calls++
	if g.calls <= len(g.answers) {
		return nil, g.answers[g.calls-1]
	}
	return connect.NewResponse(&agentv1.ReportStatusResponse{}), nil
}

// TestApplyReportsUntilAcknowledged: the report after applying a
// configuration, which a rollout waits for, is sent again while the gateway
// cannot record it, and the generation counts as applied only once it has.
func TestApplyReportsUntilAcknowledged(t *testing.T) {
	unavailable := connect.NewError(connect.CodeUnavailable, errors.New("writing the Device status: etcd is down"))
	for _, tc := range []struct {
		name    string
		answers []error
		calls   int
		saved   int64
	}{
		{"acknowledged at once", nil, 1, 7},
		{"the gateway could not write it twice", []error{unavailable, unavailable}, 3, 7},
		{"refused", []error{connect.NewError(connect.CodeInvalidArgument, errors.New("facts.state"))}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state, err := LoadState(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			a := New(Options{MaxBackoff: time.Millisecond}, state, &Simulated{Serial: "s1"}, logr.Discard())
			g := &flakyGateway{answers: tc.answers}
			a.apply(context.Background(), g, &agentv1.DesiredConfig{Generation: 7, State: "Active"})
			if g.calls != tc.calls {
				t.Errorf("%d calls, want %d", g.calls, tc.calls)
			}
			if got := state.AppliedGeneration(); got != tc.saved {
				t.Errorf("applied generation %d, want %d", got, tc.saved)
			}
		})
	}
}
