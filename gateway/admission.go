package gateway

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
)

// DefaultMaxConcurrentEnrollments bounds the enrollments one replica runs
// at once. Each writes to the apiserver (a fresh read of its token and the
// Device's create); 10,000 devices enrolling at once, unbounded, queued
// 10,000 writes at an apiserver that then timed out its reads and writes
// alike, and the informers it feeds fell minutes behind. Waiting here
// costs a parked call.
const DefaultMaxConcurrentEnrollments = 32

// DefaultMaxConcurrentReports bounds the agents' reports one replica
// writes to their Devices at once. A configuration pushed to 10,000
// connected devices brings 10,000 reports within seconds; written all at
// once they timed out at the apiserver for minutes, the replica's own
// Lease renewal with them.
const DefaultMaxConcurrentReports = 32

// enrollQueueWait is how long an enrollment waits for its turn before the
// agent is told to come back later.
const enrollQueueWait = 2 * time.Minute

// reportQueueWait is how long a report waits for its turn; the agent
// sends it again later.
const reportQueueWait = time.Minute

var (
	errEnrollmentsBusy = errors.New("the gateway is enrolling other devices; try again")
	errReportsBusy     = errors.New("the gateway is writing other devices' reports; send this one again")
)

// admission hands out a bounded number of slots, first come first served.
type admission struct {
	slots chan struct{}
}

func newAdmission(n int) *admission {
	return &admission{slots: make(chan struct{}, max(n, 1))}
}

// enter waits for a slot and returns the function that frees it. It gives
// up when the call ends or after wait.
func (a *admission) enter(ctx context.Context, wait time.Duration, busy error) (func(), error) {
	select {
	case a.slots <- struct{}{}:
		return a.leave, nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case a.slots <- struct{}{}:
		return a.leave, nil
	case <-ctx.Done():
		return nil, connect.NewError(connect.CodeCanceled, ctx.Err())
	case <-t.C:
		return nil, connect.NewError(connect.CodeUnavailable, busy)
	}
}

func (a *admission) leave() { <-a.slots }
