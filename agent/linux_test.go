package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

func TestLinuxActsOnlyInsideItsDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "managed")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	l := &Linux{Dir: dir}
	ex := l.Executors()
	ctx := context.Background()

	for _, tc := range []struct {
		action string
		code   int32
	}{
		// Without --allow-destructive the host is never touched.
		{"Restart", CodeFailedPrecondition},
		{"Wipe", CodeFailedPrecondition},
		{"LogoutUser", CodeFailedPrecondition},
		{"Lock", CodeOK},
		{"SendMessage", CodeOK},
		{"Sync", CodeOK},
	} {
		res := ex[tc.action](ctx, &agentv1.Command{Action: tc.action, Parameters: &agentv1.CommandParameters{MessageTitle: "t", MessageBody: "b"}})
		if res.Code != tc.code {
			t.Errorf("%s: code %d (%s), want %d", tc.action, res.Code, res.Message, tc.code)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "locked")); err != nil {
		t.Errorf("Lock left no flag: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "messages.log")); len(b) == 0 {
		t.Error("SendMessage wrote no message")
	}
	for _, a := range []string{"EnterKiosk", "EnableLostMode", "Relinquish", "UpdateOS"} {
		if ex[a] != nil {
			t.Errorf("%s has an executor on Linux; the agent must answer Unimplemented", a)
		}
	}
	if res := ex["Retire"](ctx, &agentv1.Command{Action: "Retire"}); res.Code != CodeOK {
		t.Fatalf("Retire: %s", res.Message)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Error("Retire left the managed directory behind")
	}
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Identity = Identity{Name: "a", Namespace: "b", UID: "c"}
	if err := s.MarkCompleted("cmd-1", Result{Code: 9, Message: "no"}); err != nil {
		t.Fatal(err)
	}
	again, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := again.Completion("cmd-1"); !ok || c.Code != 9 || again.Identity.Name != "a" {
		t.Fatalf("state did not survive a restart: %+v", again)
	}
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(dir); err == nil {
		t.Fatal("a corrupt state file must be an error, not a silent fresh start")
	}
}

func TestLinuxEnforcesTheDisabledState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "managed")
	l := &Linux{Dir: dir}
	ctx := context.Background()
	flag := filepath.Join(dir, "disabled")

	if facts := l.Apply(ctx, &agentv1.DesiredConfig{State: "Disabled"}); facts.GetState() != "Disabled" {
		t.Errorf("reported state %q after a Disabled configuration", facts.GetState())
	}
	if _, err := os.Stat(flag); err != nil {
		t.Errorf("no disabled flag: %v", err)
	}
	// A configuration that says nothing about the state keeps it.
	if facts := l.Apply(ctx, &agentv1.DesiredConfig{}); facts.GetState() != "Disabled" {
		t.Errorf("reported state %q after a configuration without state", facts.GetState())
	}
	if facts := l.Apply(ctx, &agentv1.DesiredConfig{State: "Active"}); facts.GetState() != "Active" {
		t.Errorf("reported state %q after an Active configuration", facts.GetState())
	}
	if _, err := os.Stat(flag); !os.IsNotExist(err) {
		t.Errorf("the disabled flag stayed: %v", err)
	}
}
