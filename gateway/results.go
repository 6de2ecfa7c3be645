package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// A DeviceAction's updates are written, as one patch, once they stop
// arriving: when none came for it for resultQuiet, or when its oldest has
// waited resultGatherMax. Devices wait on them (a command goes out once its
// delivery is recorded, an agent's result call returns once the result
// is), so a lone update goes out within resultQuiet and a tick, whatever
// other actions are doing. A fan-out's deliveries and results come as
// bursts; writing as soon as the first few had arrived cost a write of
// every row for them, and the rest of the burst waited behind it.
const (
	resultQuiet     = 25 * time.Millisecond
	resultGatherMax = 250 * time.Millisecond
	// resultTick is how often gathering updates are looked at.
	resultTick = 5 * time.Millisecond
)

// rowUpdate moves one device's row of a DeviceAction forward.
type rowUpdate struct {
	device  string
	phase   mdmv1alpha1.DeviceCommandPhase
	code    int32
	message string
	at      time.Time
	// done, when set, receives the outcome of the write.
	done chan error
}

// resultWriter merges row updates per DeviceAction into one JSON patch. Each
// changed row carries test operations on its name and current phase, so a
// patch never lands on a moved row or moves a row backwards, and no
// resourceVersion conflict arises from unrelated changes to the action.
//
// A write that fails is not lost: a waiting caller gets the error (a
// stream that could not record a delivery ends, and its agent subscribes
// again; an agent sends its result again), and an update nobody waits for
// is tried again with backoff. When the gateway stops, what is pending is
// written once more before it returns.
type resultWriter struct {
	client    client.Client
	apiReader client.Reader
	log       logr.Logger

	mu      sync.Mutex
	pending map[types.NamespacedName]*gathering
	now     func() time.Time
	// stopped refuses updates that arrive after the final flush.
	stopped bool
	wakeup  chan struct{}
}

// Retry delays of updates nobody waits for, after a failed write.
const (
	resultRetryMin = 100 * time.Millisecond
	resultRetryMax = 10 * time.Second
	// resultFinalFlush bounds the last write when the gateway stops.
	resultFinalFlush = 5 * time.Second
)

var errGatewayStopping = errors.New("the gateway is stopping")

func newResultWriter(c client.Client, apiReader client.Reader, log logr.Logger, now func() time.Time) *resultWriter {
	return &resultWriter{client: c, apiReader: apiReader, log: log, now: now,
		pending: map[types.NamespacedName]*gathering{}, wakeup: make(chan struct{}, 1)}
}

// gathering is the pending updates of one DeviceAction.
type gathering struct {
	updates []rowUpdate
	// first is when they began to gather, last when the newest came.
	first, last time.Time
}

// gathered reports whether the updates are to be written at now.
func (g *gathering) gathered(now time.Time) bool {
	return now.Sub(g.last) >= resultQuiet || now.Sub(g.first) >= resultGatherMax
}

// addLocked adds updates to an action's gathering; ahead puts them before
// those already there.
func (w *resultWriter) addLocked(action types.NamespacedName, ahead bool, updates ...rowUpdate) {
	now := w.now()
	g := w.pending[action]
	if g == nil {
		g = &gathering{first: now}
		w.pending[action] = g
	}
	g.last = now
	if ahead {
		g.updates = append(updates, g.updates...)
		return
	}
	g.updates = append(g.updates, updates...)
}

func (w *resultWriter) enqueue(action types.NamespacedName, u rowUpdate) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		if u.done != nil {
			u.done <- errGatewayStopping
		}
		return
	}
	w.addLocked(action, false, u)
	w.mu.Unlock()
	w.wake()
}

// giveBack returns updates whose write failed to an action's gathering,
// before those that came meanwhile, which are newer.
func (w *resultWriter) giveBack(action types.NamespacedName, updates []rowUpdate) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.addLocked(action, true, updates...)
}

// take removes and returns the updates of the actions that are gathered at
// now, all of them when all is set, and says whether any are left.
func (w *resultWriter) take(now time.Time, all bool) (map[types.NamespacedName][]rowUpdate, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	batch := map[types.NamespacedName][]rowUpdate{}
	for key, g := range w.pending {
		if all || g.gathered(now) {
			batch[key] = g.updates
			delete(w.pending, key)
		}
	}
	return batch, len(w.pending) > 0
}

func (w *resultWriter) wake() {
	select {
	case w.wakeup <- struct{}{}:
	default:
	}
}

func (w *resultWriter) run(ctx context.Context) {
	retry := resultRetryMin
	for {
		select {
		case <-ctx.Done():
			w.stop()
			return
		case <-w.wakeup:
		}
		// Each action's burst of updates joins one patch.
		for left := true; left; {
			select {
			case <-ctx.Done():
				w.stop()
				return
			case <-time.After(resultTick):
			}
			var batch map[types.NamespacedName][]rowUpdate
			batch, left = w.take(w.now(), false)
			if len(batch) == 0 {
				continue
			}
			if w.flushBatch(ctx, batch) {
				retry = resultRetryMin
				continue
			}
			select {
			case <-ctx.Done():
				w.stop()
				return
			case <-time.After(retry):
			}
			retry = min(2*retry, resultRetryMax)
			left = true
		}
	}
}

// resultWorkers bounds the DeviceActions written at once. Each action's
// updates are one patch; written one action after another, a device's
// command waited for the writes of every other action pending with it.
const resultWorkers = 8

// flushPending writes every pending update and reports whether all writes
// succeeded.
func (w *resultWriter) flushPending(ctx context.Context) bool {
	batch, _ := w.take(time.Time{}, true)
	return w.flushBatch(ctx, batch)
}

// flushBatch writes the updates of each action, the actions in parallel,
// and reports whether all writes succeeded. Failed updates that nobody
// waits for go back to pending.
func (w *resultWriter) flushBatch(ctx context.Context, batch map[types.NamespacedName][]rowUpdate) bool {
	var failed atomic.Bool
	inParallel(resultWorkers, slices.Collect(maps.Keys(batch)), func(key types.NamespacedName) {
		if !w.flushAction(ctx, key, batch[key]) {
			failed.Store(true)
		}
	})
	return !failed.Load()
}

// flushAction writes the updates of one action and answers their waiters;
// it reports whether the write succeeded.
func (w *resultWriter) flushAction(ctx context.Context, key types.NamespacedName, updates []rowUpdate) bool {
	action, err := w.flush(ctx, key, updates)
	if err != nil {
		w.log.Error(err, "Writing command results; trying again", "deviceAction", key)
	}
	var again []rowUpdate
	for _, u := range updates {
		switch {
		case u.done != nil && err != nil:
			u.done <- err
		case u.done != nil:
			u.done <- recorded(action, u)
		case err != nil && retryable(err):
			again = append(again, u)
		}
	}
	if len(again) > 0 {
		w.giveBack(key, again)
	}
	return err == nil
}

// retryable tells a write that may succeed later (the apiserver or the
// network is down, busy or slow) from one that never will (forbidden,
// invalid), which is logged and dropped instead of holding up the writer.
func retryable(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return true // not an answer from the apiserver: a network error
	}
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) || apierrors.IsUnexpectedServerError(err)
}

// stop refuses new updates and writes what is pending one last time.
func (w *resultWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), resultFinalFlush)
	defer cancel()
	if !w.flushPending(ctx) {
		w.log.Error(errGatewayStopping, "Some command deliveries were not recorded; their devices receive the commands again on reconnect")
	}
}

// flush writes the updates of one action, re-reading it from the apiserver
// when the cache was behind and a test operation failed.
func (w *resultWriter) flush(ctx context.Context, key types.NamespacedName, updates []rowUpdate) (*mdmv1alpha1.DeviceAction, error) {
	action := &mdmv1alpha1.DeviceAction{}
	var reader client.Reader = w.client
	for attempt := 0; attempt < 3; attempt++ {
		if err := reader.Get(ctx, key, action); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil // the action is gone; nothing to record
			}
			return nil, err
		}
		ops, changes := patchOps(action, updates)
		if len(ops) == 0 {
			return action, nil
		}
		body, err := json.Marshal(ops)
		if err != nil {
			return nil, err
		}
		spec, queued := action.Spec, action.Status.QueuedAt
		err = w.client.Status().Patch(ctx, action, client.RawPatch(types.JSONPatchType, body))
		switch {
		case err == nil:
			// Counted here, once per row this patch moved: a retried or
			// repeated result changes nothing and counts nothing.
			counted := &mdmv1alpha1.DeviceAction{Spec: spec}
			counted.Status.QueuedAt = queued
			for _, c := range changes {
				observeRow(counted, &c.row, c.phase, c.at)
			}
			return action, nil
		case apierrors.IsNotFound(err):
			return nil, nil
		case !apierrors.IsConflict(err) && !isTestFailed(err):
			return nil, fmt.Errorf("patching DeviceAction status: %w", err)
		}
		reader = w.apiReader
	}
	return nil, fmt.Errorf("patching DeviceAction status: rows kept changing")
}

// recorded says whether a result is what the action's row now holds: an
// update that was overtaken (the row expired, or the action is gone) must
// not be acknowledged as stored.
func recorded(action *mdmv1alpha1.DeviceAction, u rowUpdate) error {
	if action == nil {
		return errActionGone
	}
	if _, row := rowOf(action, u.device); row == nil || row.Phase != u.phase {
		phase := mdmv1alpha1.DeviceCommandPhase("gone")
		if row != nil {
			phase = row.Phase
		}
		return &overtakenError{phase: phase}
	}
	return nil
}

var errActionGone = errors.New("the DeviceAction was deleted")

// overtakenError is a result that arrived after its row had ended otherwise.
type overtakenError struct {
	phase mdmv1alpha1.DeviceCommandPhase
}

func (e *overtakenError) Error() string { return fmt.Sprintf("the command is already %s", e.phase) }

// isTestFailed recognises a JSON patch whose test operation did not hold.
func isTestFailed(err error) bool {
	var status apierrors.APIStatus
	return apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) ||
		(errors.As(err, &status) && status.Status().Code == http.StatusUnprocessableEntity)
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// patchOps turns updates into JSON patch operations against the action as
// read. An update that would move a row backwards is dropped: a result never
// turns back into Delivered, and an Expired row stays Expired.
// rowChange is a row as read and the phase a patch moves it to.
type rowChange struct {
	row   mdmv1alpha1.DeviceResult
	phase mdmv1alpha1.DeviceCommandPhase
	at    time.Time
}

func patchOps(action *mdmv1alpha1.DeviceAction, updates []rowUpdate) ([]jsonPatchOp, []rowChange) {
	latest := map[string]rowUpdate{}
	var order []string
	for _, u := range updates {
		if prev, ok := latest[u.device]; !ok || rank(u.phase) >= rank(prev.phase) {
			if !ok {
				order = append(order, u.device)
			}
			latest[u.device] = u
		}
	}
	var ops []jsonPatchOp
	var changes []rowChange
	for _, name := range order {
		u := latest[name]
		i, row := rowOf(action, name)
		if row == nil || !row.Phase.Open() || rank(u.phase) <= rank(row.Phase) {
			continue
		}
		changes = append(changes, rowChange{row: *row, phase: u.phase, at: u.at})
		base := fmt.Sprintf("/status/devices/%d", i)
		at := metav1.NewTime(u.at).ToUnstructured()
		ops = append(ops,
			jsonPatchOp{Op: "test", Path: base + "/name", Value: name},
			jsonPatchOp{Op: "test", Path: base + "/phase", Value: string(row.Phase)},
			jsonPatchOp{Op: "replace", Path: base + "/phase", Value: string(u.phase)},
		)
		switch u.phase {
		case mdmv1alpha1.CommandDelivered:
			ops = append(ops, jsonPatchOp{Op: "add", Path: base + "/deliveredAt", Value: at})
		default:
			if row.DeliveredAt == nil {
				ops = append(ops, jsonPatchOp{Op: "add", Path: base + "/deliveredAt", Value: at})
			}
			ops = append(ops,
				jsonPatchOp{Op: "add", Path: base + "/completedAt", Value: at},
				jsonPatchOp{Op: "add", Path: base + "/code", Value: u.code},
				jsonPatchOp{Op: "add", Path: base + "/message", Value: u.message},
			)
		}
	}
	return ops, changes
}

// rank orders row phases along the way a command travels.
func rank(p mdmv1alpha1.DeviceCommandPhase) int {
	switch p {
	case mdmv1alpha1.CommandQueued:
		return 1
	case mdmv1alpha1.CommandDelivered:
		return 2
	case mdmv1alpha1.CommandSucceeded, mdmv1alpha1.CommandFailed, mdmv1alpha1.CommandCanceled:
		return 3
	}
	return 0
}

func isFinal(p mdmv1alpha1.DeviceCommandPhase) bool {
	switch p {
	case mdmv1alpha1.CommandSucceeded, mdmv1alpha1.CommandFailed, mdmv1alpha1.CommandExpired,
		mdmv1alpha1.CommandCanceled, mdmv1alpha1.CommandIneligible:
		return true
	}
	return false
}
