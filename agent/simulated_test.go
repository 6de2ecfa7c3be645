package agent

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

func TestSimulatedDeviceModelsItsCommands(t *testing.T) {
	ctx := context.Background()
	s := &Simulated{PlatformName: "IOS", OSVersion: "17.4"}
	run := func(action string, p *agentv1.CommandParameters) Result {
		return s.Executors()[action](ctx, &agentv1.Command{Id: action, Action: action, Parameters: p})
	}
	s.Apply(ctx, &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{{Name: "wifi"}}})

	for _, tc := range []struct {
		action string
		params *agentv1.CommandParameters
		code   int32
	}{
		{"Lock", nil, CodeOK},
		{"SendMessage", &agentv1.CommandParameters{MessageTitle: "IT", MessageBody: "hello"}, CodeOK},
		{"UpdateOS", &agentv1.CommandParameters{OsVersion: "17.10"}, CodeOK},
		// Older than what it runs: a real device refuses.
		{"UpdateOS", &agentv1.CommandParameters{OsVersion: "17.5"}, CodeFailedPrecondition},
		{"LogoutUser", nil, CodeOK},
		{"LogoutUser", nil, CodeFailedPrecondition}, // nobody is logged in any more
		{"ReinstallConfiguration", &agentv1.CommandParameters{Configurations: []string{"wifi"}}, CodeOK},
		{"ReinstallConfiguration", &agentv1.CommandParameters{Configurations: []string{"vpn"}}, 5},
		{"Restart", nil, CodeOK},
		{"EnableLostMode", &agentv1.CommandParameters{LostMode: &agentv1.LostMode{Message: "call IT"}}, CodeOK},
	} {
		if res := run(tc.action, tc.params); res.Code != tc.code {
			t.Errorf("%s: code %d (%s), want %d", tc.action, res.Code, res.Message, tc.code)
		}
	}
	m := s.Observe()
	if !m.Locked || m.OSVersion != "17.10" || m.Boots != 2 || m.SessionEnded || len(m.Messages) != 1 ||
		m.Installed["wifi"] != 2 || !m.LostMode.GetEnabled() || m.LostMode.GetMessage() != "call IT" {
		t.Errorf("model after the commands: %+v", m)
	}
	// What it reports is the model, not what it was last asked.
	facts := s.Facts()
	if facts.GetDeviceInfo().GetOsVersion() != "17.10" || !facts.GetLostMode().GetEnabled() {
		t.Errorf("reported %v", facts)
	}
}

func TestSimulatedFailuresAreInjectedPerCommand(t *testing.T) {
	ctx := context.Background()
	s := &Simulated{PlatformName: "Linux", OSVersion: "1.0"}
	s.FailNext("Lock", CodeInternal, "the screen is broken")
	lock := s.Executors()["Lock"]
	if res := lock(ctx, &agentv1.Command{Action: "Lock"}); res.Code != CodeInternal || res.Message != "the screen is broken" {
		t.Errorf("first Lock: %+v", res)
	}
	if s.Observe().Locked {
		t.Error("a failed Lock locked the device")
	}
	if res := lock(ctx, &agentv1.Command{Action: "Lock"}); res.Code != CodeOK || !s.Observe().Locked {
		t.Errorf("second Lock: %+v", res)
	}
}

func TestSimulatedConfigurationIsObservedNotEchoed(t *testing.T) {
	ctx := context.Background()
	s := &Simulated{PlatformName: "Android", OSVersion: "14", RefuseOwners: map[string]bool{"mallory": true}}
	facts := s.Apply(ctx, &agentv1.DesiredConfig{Owner: "alice", Kiosk: &agentv1.Kiosk{Enabled: true, App: "com.example.pos"}})
	if facts.GetOwner() != "alice" || facts.GetKiosk().GetApp() != "com.example.pos" {
		t.Fatalf("reported %v", facts)
	}
	// The device keeps its owner when asked to take one it refuses, and
	// a configuration that says nothing of kiosk mode leaves it as it is.
	facts = s.Apply(ctx, &agentv1.DesiredConfig{Owner: "mallory"})
	if facts.GetOwner() != "alice" || !facts.GetKiosk().GetEnabled() {
		t.Errorf("reported %v", facts)
	}
}

// A setting the device does not support is left alone and reported
// Unsupported; the rest of its configuration applies, and the configuration
// is Applied. A failed setting fails it.
func TestSimulatedSettingsUnsupportedOrFailed(t *testing.T) {
	ctx := context.Background()
	s := &Simulated{PlatformName: "Android", OSVersion: "14"}
	s.UnsupportSetting("restrictions.cameraDisabled", true)
	cfg := &agentv1.DesiredConfig{Configurations: []*agentv1.Configuration{{Name: "lockdown", Revision: "r1", Settings: &agentv1.Settings{
		Passcode:     &agentv1.Passcode{MinLength: proto.Int32(8)},
		Restrictions: &agentv1.Restrictions{CameraDisabled: proto.Bool(true)},
	}}}}
	states := s.Apply(ctx, cfg).GetConfigurations()
	if len(states) != 1 || states[0].GetState() != "Applied" || len(states[0].GetSettings()) != 1 ||
		states[0].GetSettings()[0].GetPath() != "restrictions.cameraDisabled" || states[0].GetSettings()[0].GetReason() != "Unsupported" {
		t.Fatalf("reported %v, want Applied with restrictions.cameraDisabled Unsupported", states)
	}
	if got := s.Observe().Settings; len(got) != 1 || got["passcode.minLength"] != "8" {
		t.Errorf("the device holds %v, want only passcode.minLength=8", got)
	}
	s.FailSetting("passcode.minLength", true)
	cfg.Configurations[0].Settings.Passcode.MinLength = proto.Int32(10)
	states = s.Apply(ctx, cfg).GetConfigurations()
	if states[0].GetState() != "Failed" || len(states[0].GetSettings()) != 2 {
		t.Errorf("reported %v, want Failed with one Failed and one Unsupported setting", states)
	}
}
