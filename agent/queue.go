package agent

import (
	"context"
	"sync"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// work is one thing the stream asked for: a configuration or a command.
type work struct {
	config  *agentv1.DesiredConfig
	command *agentv1.Command
}

// workQueue holds what the stream delivered and the worker has not yet
// started, so that a CancelCommand can still withdraw a command. One worker
// takes items in the order they came.
type workQueue struct {
	mu      sync.Mutex
	items   []work
	running string // the command the worker runs now
	ready   chan struct{}
}

func newWorkQueue() *workQueue { return &workQueue{ready: make(chan struct{}, 1)} }

func (q *workQueue) push(w work) {
	q.mu.Lock()
	q.items = append(q.items, w)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// next waits for the next item and, for a command, marks it running under
// the same lock, so that a cancel either withdraws it or finds it started.
func (q *workQueue) next(ctx context.Context) (work, bool) {
	for {
		q.mu.Lock()
		if ctx.Err() != nil {
			// The session ended: what waits is dropped unstarted, and the
			// gateway sends it again on the next stream.
			q.items = nil
			q.mu.Unlock()
			return work{}, false
		}
		if len(q.items) > 0 {
			w := q.items[0]
			q.items = q.items[1:]
			if w.command != nil {
				q.running = w.command.GetId()
			}
			q.mu.Unlock()
			return w, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return work{}, false
		case <-q.ready:
		}
	}
}

// done says the running command finished.
func (q *workQueue) done() {
	q.mu.Lock()
	q.running = ""
	q.mu.Unlock()
}

// withdraw removes a command not yet started. It reports whether the
// command was waiting, and whether it is running now.
func (q *workQueue) withdraw(id string) (waiting, running bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, w := range q.items {
		if w.command.GetId() == id {
			q.items = append(q.items[:i], q.items[i+1:]...)
			return true, false
		}
	}
	return false, q.running == id
}
