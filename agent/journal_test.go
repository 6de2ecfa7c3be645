package agent

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/go-logr/logr"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
	"github.com/kubemdm/kubemdm/api/agent/v1/agentv1connect"
)

// recordingGateway acknowledges every result and keeps them.
type recordingGateway struct {
	agentv1connect.AgentServiceClient
	mu      sync.Mutex
	results []*agentv1.CompleteCommandRequest
}

func (g *recordingGateway) CompleteCommand(_ context.Context, req *connect.Request[agentv1.CompleteCommandRequest]) (*connect.Response[agentv1.CompleteCommandResponse], error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.results = append(g.results, req.Msg)
	return connect.NewResponse(&agentv1.CompleteCommandResponse{}), nil
}

func (g *recordingGateway) ReportStatus(context.Context, *connect.Request[agentv1.ReportStatusRequest]) (*connect.Response[agentv1.ReportStatusResponse], error) {
	return connect.NewResponse(&agentv1.ReportStatusResponse{}), nil
}

func (g *recordingGateway) waitFor(t *testing.T, n int) []*agentv1.CompleteCommandRequest {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		g.mu.Lock()
		got := append([]*agentv1.CompleteCommandRequest(nil), g.results...)
		g.mu.Unlock()
		if len(got) >= n {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("fewer than %d results reported", n)
	return nil
}

// countingPlatform counts the executions of each action.
type countingPlatform struct {
	Simulated
	mu   sync.Mutex
	runs map[string]int
}

func (p *countingPlatform) Executors() map[string]Executor {
	out := map[string]Executor{}
	for _, a := range allActions {
		out[a] = func(context.Context, *agentv1.Command) Result {
			p.mu.Lock()
			p.runs[a]++
			p.mu.Unlock()
			return Result{Code: CodeOK, Message: a + " done"}
		}
	}
	return out
}

func newJournalAgent(t *testing.T, dir string) (*Agent, *countingPlatform) {
	t.Helper()
	state, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingPlatform{runs: map[string]int{}}
	return New(Options{MaxBackoff: time.Millisecond}, state, p, logr.Discard()), p
}

func TestExecuteJournalsBeforeRunning(t *testing.T) {
	for _, tc := range []struct {
		name     string
		action   string
		wantCode int32
	}{
		// The Restart rebooted the host before the agent could record it:
		// that was its success, and the host must not reboot again.
		{"a Restart interrupted by its own reboot", "Restart", CodeOK},
		{"a Wipe interrupted by a crash", "Wipe", CodeAborted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			before, _ := newJournalAgent(t, dir)
			if err := before.state.MarkStarted("cmd-1", tc.action); err != nil {
				t.Fatal(err)
			}
			// The agent starts again from its state directory and the
			// gateway delivers the command again.
			a, p := newJournalAgent(t, dir)
			g := &recordingGateway{}
			a.run(context.Background(), context.Background(), g, &agentv1.Command{Id: "cmd-1", Action: tc.action})
			got := g.waitFor(t, 1)
			if got[0].GetCode() != tc.wantCode {
				t.Errorf("reported code %d (%s), want %d", got[0].GetCode(), got[0].GetMessage(), tc.wantCode)
			}
			if p.runs[tc.action] != 0 {
				t.Errorf("%s ran %d times after the restart", tc.action, p.runs[tc.action])
			}
			// And the next delivery repeats the same result, still without
			// running it.
			a.run(context.Background(), context.Background(), g, &agentv1.Command{Id: "cmd-1", Action: tc.action})
			if again := g.waitFor(t, 2); again[1].GetCode() != tc.wantCode || p.runs[tc.action] != 0 {
				t.Errorf("second delivery: code %d, %d runs", again[1].GetCode(), p.runs[tc.action])
			}
		})
	}

	t.Run("a new command runs once and its record survives a restart", func(t *testing.T) {
		dir := t.TempDir()
		a, p := newJournalAgent(t, dir)
		g := &recordingGateway{}
		a.run(context.Background(), context.Background(), g, &agentv1.Command{Id: "cmd-2", Action: "Lock"})
		g.waitFor(t, 1)
		again, p2 := newJournalAgent(t, dir)
		again.run(context.Background(), context.Background(), g, &agentv1.Command{Id: "cmd-2", Action: "Lock"})
		got := g.waitFor(t, 2)
		if p.runs["Lock"]+p2.runs["Lock"] != 1 || got[1].GetCode() != CodeOK {
			t.Errorf("Lock ran %d times; second report code %d", p.runs["Lock"]+p2.runs["Lock"], got[1].GetCode())
		}
	})
}

func TestCancel(t *testing.T) {
	t.Run("drops a command waiting its turn", func(t *testing.T) {
		a, p := newJournalAgent(t, t.TempDir())
		g := &recordingGateway{}
		q := newWorkQueue()
		q.push(work{command: &agentv1.Command{Id: "lock", Action: "Lock"}})
		a.cancel(context.Background(), g, q, "lock")
		got := g.waitFor(t, 1)
		if got[0].GetCode() != CodeCanceled || got[0].GetOutcome() != agentv1.Outcome_OUTCOME_FAILED {
			t.Errorf("reported %v", got[0])
		}
		// Should the gateway send it again, it never runs.
		a.run(context.Background(), context.Background(), g, &agentv1.Command{Id: "lock", Action: "Lock"})
		if got := g.waitFor(t, 2); got[1].GetCode() != CodeCanceled || p.runs["Lock"] != 0 {
			t.Errorf("after the cancel: code %d, %d runs", got[1].GetCode(), p.runs["Lock"])
		}
	})
	t.Run("keeps the result of a command that already ran", func(t *testing.T) {
		a, _ := newJournalAgent(t, t.TempDir())
		g := &recordingGateway{}
		a.run(context.Background(), context.Background(), g, &agentv1.Command{Id: "sync", Action: "Sync"})
		g.waitFor(t, 1)
		a.cancel(context.Background(), g, newWorkQueue(), "sync")
		if got := g.waitFor(t, 2); got[1].GetCode() != CodeOK {
			t.Errorf("the cancel replaced a result: %v", got[1])
		}
	})
	t.Run("reports nothing for the command that runs now", func(t *testing.T) {
		a, _ := newJournalAgent(t, t.TempDir())
		g := &recordingGateway{}
		q := newWorkQueue()
		q.push(work{command: &agentv1.Command{Id: "wipe", Action: "Wipe"}})
		if _, ok := q.next(context.Background()); !ok {
			t.Fatal("no work")
		}
		a.cancel(context.Background(), g, q, "wipe")
		time.Sleep(50 * time.Millisecond)
		g.mu.Lock()
		defer g.mu.Unlock()
		if len(g.results) != 0 {
			t.Errorf("reported %v for a running command", g.results)
		}
	})
}

func TestQueueDropsUnstartedWorkWhenTheSessionEnds(t *testing.T) {
	q := newWorkQueue()
	q.push(work{command: &agentv1.Command{Id: "a", Action: "Lock"}})
	q.push(work{command: &agentv1.Command{Id: "b", Action: "Wipe"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if w, ok := q.next(ctx); ok {
		t.Fatalf("the worker took %v after its session ended", w.command)
	}
	if waiting, _ := q.withdraw("b"); waiting {
		t.Error("an unstarted command stayed queued after its session ended")
	}
}

func TestJournalSurvivesConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	state, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			id := fmt.Sprintf("cmd-%d", i)
			if err := state.MarkStarted(id, "Lock"); err != nil {
				t.Error(err)
			}
			if err := state.MarkCompleted(id, Result{Code: CodeOK}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	again, err := LoadState(dir)
	if err != nil {
		t.Fatalf("the journal is unreadable after concurrent writes: %v", err)
	}
	for i := range 20 {
		if _, ok := again.Completion(fmt.Sprintf("cmd-%d", i)); !ok {
			t.Errorf("cmd-%d is missing from the journal", i)
		}
	}
	if len(again.Started) != 0 {
		t.Errorf("finished commands still journaled as started: %v", again.Started)
	}
}

func TestEnrollmentRetriesPresentTheSameKey(t *testing.T) {
	dir := t.TempDir()
	st, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	publicKey := func(csrPEM []byte) string {
		block, _ := pem.Decode(csrPEM)
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return string(csr.RawSubjectPublicKeyInfo)
	}
	keyPEM, first, err := st.EnrollmentKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	// The agent restarts before the answer came: the same key again.
	again, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, second, err := again.EnrollmentKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	if publicKey(first) != publicKey(second) {
		t.Error("a retried enrollment presents another key")
	}
	// Once enrolled, the pending key is gone and a later enrollment
	// starts from a new one.
	if err := again.StoreCredentials(keyPEM, []byte("cert"), nil); err != nil {
		t.Fatal(err)
	}
	if err := again.ForgetEnrollmentKey(); err != nil {
		t.Fatal(err)
	}
	_, third, err := again.EnrollmentKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	if publicKey(third) == publicKey(first) {
		t.Error("a new enrollment reuses the key of the last one")
	}
}
