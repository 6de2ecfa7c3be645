// Package agent is the reference device agent: it enrolls with a token, holds
// its key and certificate in a state directory, keeps a stream to the
// gateway, applies the desired configuration and runs commands through one
// executor per command type.
package agent

import (
	"context"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// Result is the outcome of a command on the device.
type Result struct {
	// Code is a google.rpc.Code number; 0 is success.
	Code    int32
	Message string
	Steps   []*agentv1.Step
}

// Codes the executors answer with (google.rpc.Code numbers).
const (
	CodeOK                 int32 = 0
	CodeCanceled           int32 = 1
	CodeUnknown            int32 = 2
	CodeNotFound           int32 = 5
	CodeFailedPrecondition int32 = 9
	CodeAborted            int32 = 10
	CodeUnimplemented      int32 = 12
	CodeInternal           int32 = 13
)

// Executor runs one command type.
type Executor func(ctx context.Context, cmd *agentv1.Command) Result

// Platform is what the agent manages: a real host or a simulated device.
type Platform interface {
	// Info describes the device for enrollment and reports.
	Info() *agentv1.DeviceInfo
	// Apply converges the device to the desired configuration and returns
	// what it then observes.
	Apply(ctx context.Context, cfg *agentv1.DesiredConfig) *agentv1.Facts
	// Executors maps action names (Lock, Wipe, ...) to their executors.
	// An action without one is answered Unimplemented.
	Executors() map[string]Executor
}

// Observer is a platform that can say what it shows at any moment, so the
// agent reports what a command changed (an OS update, kiosk mode) at once
// rather than at the next configuration.
type Observer interface {
	Facts() *agentv1.Facts
}
