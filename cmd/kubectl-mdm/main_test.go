package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// fakeSession is a session over an in-memory client: the plugin's own
// logic (what it refuses, filters and prints) without a cluster; the e2e
// suite runs it against a real one.
func fakeSession(t *testing.T, objs ...client.Object) *session {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := mdmv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&mdmv1alpha1.DeviceAction{}).Build()
	return &session{client: c, namespace: "fleet"}
}

func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"7d": 7 * 24 * time.Hour, "1.5d": 36 * time.Hour, "90m": 90 * time.Minute, "0s": 0,
	} {
		got, err := parseDuration(in)
		if err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "-1d", "-5m", "week", "7 d"} {
		if _, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) took it", in)
		}
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		before time.Duration
		want   string
	}{
		{-time.Minute, "0s"}, {45 * time.Second, "45s"}, {119 * time.Second, "119s"}, {2 * time.Minute, "2m"},
		{170 * time.Minute, "170m"}, {3 * time.Hour, "3h"}, {47 * time.Hour, "47h"}, {9 * 24 * time.Hour, "9d"},
	} {
		if got := ago(now, now.Add(-c.before)); got != c.want {
			t.Errorf("ago(%v) = %q, want %q", c.before, got, c.want)
		}
	}
}

func TestPairs(t *testing.T) {
	got, err := pairs([]string{"cityId=SF", "note=a=b", "empty="})
	if err != nil || len(got) != 3 || got["note"] != "a=b" || got["empty"] != "" {
		t.Fatalf("pairs = %v, %v", got, err)
	}
	for _, bad := range []string{"novalue", "=x"} {
		if _, err := pairs([]string{bad}); err == nil || !strings.Contains(err.Error(), "KEY=VALUE") {
			t.Errorf("pairs(%q) = %v, want a KEY=VALUE error", bad, err)
		}
	}
}

func TestCheckOutput(t *testing.T) {
	if err := checkOutput("", "json"); err != nil {
		t.Errorf("no -o refused: %v", err)
	}
	if err := checkOutput("yaml", "json", "yaml"); err != nil {
		t.Errorf("-o yaml refused: %v", err)
	}
	err := checkOutput("table", "json", "yaml", "name")
	if err == nil || err.Error() != `-o "table": use json, yaml or name` {
		t.Errorf("-o table: %v", err)
	}
}

func row(name string, phase mdmv1alpha1.DeviceCommandPhase) mdmv1alpha1.DeviceResult {
	return mdmv1alpha1.DeviceResult{Name: name, Phase: phase}
}

func TestFrameShowsFailedAndUnfinishedFirstAndFits(t *testing.T) {
	a := &mdmv1alpha1.DeviceAction{Status: mdmv1alpha1.DeviceActionStatus{Devices: []mdmv1alpha1.DeviceResult{
		row("d1", mdmv1alpha1.CommandSucceeded), row("d2", mdmv1alpha1.CommandSucceeded), row("d3", mdmv1alpha1.CommandQueued),
		{Name: "d4", Phase: mdmv1alpha1.CommandFailed, Code: 9, Message: "device is busy"}, row("d5", mdmv1alpha1.CommandDelivered),
		row("d6", mdmv1alpha1.CommandPending),
	}}}
	lines := strings.Split(strings.TrimSuffix(frame(a, 3), "\n"), "\n")
	want := []string{
		"[###############---------------] 3/6  queued 2  delivered 1  succeeded 2  failed 1",
		"DEVICE   PHASE       CODE   MESSAGE",
		"d4       Failed      9      device is busy",
		"d3       Queued      0      ",
		"d5       Delivered   0      ",
		"… and 3 more",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("frame:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if f := frame(a, 10); strings.Contains(f, "more") || strings.Count(f, "\n") != 8 {
		t.Errorf("a frame with room for every row:\n%s", f)
	}
}

func TestPrintRowsWide(t *testing.T) {
	queued := metav1.NewTime(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC))
	delivered := metav1.NewTime(queued.Add(1500 * time.Millisecond))
	completed := metav1.NewTime(queued.Add(4 * time.Second))
	a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Name: "lock-x"}, Status: mdmv1alpha1.DeviceActionStatus{
		Phase: mdmv1alpha1.ActionSucceeded, Devices: []mdmv1alpha1.DeviceResult{
			{Name: "d1", Phase: mdmv1alpha1.CommandSucceeded, QueuedAt: &queued, DeliveredAt: &delivered, CompletedAt: &completed},
			{Name: "d2", Phase: mdmv1alpha1.CommandQueued, QueuedAt: &queued},
		}}}
	var narrow, wide bytes.Buffer
	if err := printRows(&narrow, a, false); err != nil {
		t.Fatal(err)
	}
	if err := printRows(&wide, a, true); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(narrow.String(), "DELIVERED IN") {
		t.Errorf("narrow table has the wide columns:\n%s", narrow.String())
	}
	for _, want := range []string{"DELIVERED IN   COMPLETED IN", "1.5s           4s", "-              -"} {
		if !strings.Contains(wide.String(), want) {
			t.Errorf("wide table lacks %q:\n%s", want, wide.String())
		}
	}
}

func TestPrintEligibility(t *testing.T) {
	a := &mdmv1alpha1.DeviceAction{Spec: mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionDeprovision},
		Status: mdmv1alpha1.DeviceActionStatus{Devices: []mdmv1alpha1.DeviceResult{
			row("cb", mdmv1alpha1.CommandSucceeded),
			{Name: "box", Phase: mdmv1alpha1.CommandIneligible, Code: 12, Message: "Deprovision is not available on Linux devices"},
		}}}
	var out bytes.Buffer
	err := printEligibility(&out, a)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "1 of 2 devices cannot run Deprovision") {
		t.Errorf("one ineligible device: %v", err)
	}
	if !strings.Contains(out.String(), "box      false      12     Deprovision is not available") {
		t.Errorf("table:\n%s", out.String())
	}
	refused := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Status: mdmv1alpha1.DeviceActionStatus{
		Phase:      mdmv1alpha1.ActionFailed,
		Conditions: []metav1.Condition{{Type: mdmv1alpha1.ConditionReady, Message: "the selector matches no device"}}}}
	if err := printEligibility(&out, refused); exitCode(err) != 1 || !strings.Contains(err.Error(), "the selector matches no device") {
		t.Errorf("an action refused as a whole: %v", err)
	}
}

func TestConfirm(t *testing.T) {
	var prompt bytes.Buffer
	err := confirm(mdmv1alpha1.ActionWipe, "", strings.NewReader("Wipe\n"), &prompt)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "--confirm Wipe") {
		t.Errorf("no terminal and no --confirm: %v", err)
	}
	if err := confirm(mdmv1alpha1.ActionWipe, "wipe", nil, &prompt); exitCode(err) != 2 {
		t.Errorf("--confirm in the wrong case: %v", err)
	}
	if err := confirm(mdmv1alpha1.ActionWipe, "Wipe", nil, &prompt); err != nil {
		t.Errorf("--confirm Wipe: %v", err)
	}
	if prompt.Len() != 0 {
		t.Errorf("prompted without a terminal: %q", prompt.String())
	}
}

// A refused verb changes nothing: every check comes before the create.
func TestRunActionRefusesBeforeCreating(t *testing.T) {
	verb := func(name string) actionVerb {
		for _, v := range actionVerbs {
			if v.name == name {
				return v
			}
		}
		t.Fatalf("no verb %s", name)
		return actionVerb{}
	}
	for _, c := range []struct {
		name    string
		verb    string
		devices []string
		flags   actionFlags
		code    int
		err     string
	}{
		{"names and a selector", "lock", []string{"d1"}, actionFlags{selector: "a=b"}, 1, "not both"},
		{"neither", "lock", nil, actionFlags{}, 1, "name the devices"},
		{"an unknown -o", "lock", []string{"d1"}, actionFlags{output: "table"}, 1, `-o "table"`},
		{"a bad selector", "lock", nil, actionFlags{selector: "a in (b"}, 1, `-l "a in (b"`},
		{"a message without a body", "message", []string{"d1"}, actionFlags{title: "IT"}, 1, "--title and --body"},
		{"deprovision without a reason", "deprovision", []string{"d1"}, actionFlags{confirm: "Deprovision"}, 1, "--reason"},
		{"wipe unconfirmed", "wipe", []string{"d1"}, actionFlags{}, 2, "--confirm Wipe"},
		{"wipe confirmed as another action", "wipe", []string{"d1"}, actionFlags{confirm: "Retire"}, 2, "not confirmed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := fakeSession(t)
			var out, errOut bytes.Buffer
			err := runAction(context.Background(), s, verb(c.verb), &c.flags, c.devices, strings.NewReader(""), &out, &errOut)
			if exitCode(err) != c.code || err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err = %v (exit %d), want exit %d with %q", err, exitCode(err), c.code, c.err)
			}
			list := &mdmv1alpha1.DeviceActionList{}
			if err := s.client.List(context.Background(), list); err != nil {
				t.Fatal(err)
			}
			if len(list.Items) != 0 || out.Len() != 0 {
				t.Errorf("created %d actions, printed %q", len(list.Items), out.String())
			}
		})
	}
}

func TestRunActionCreatesWhatTheVerbSays(t *testing.T) {
	s := fakeSession(t)
	var out bytes.Buffer
	f := &actionFlags{selector: "site=berlin", confirm: "Wipe", output: "wide"}
	if err := runAction(context.Background(), s, actionVerbs[5], f, nil, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	list := &mdmv1alpha1.DeviceActionList{}
	if err := s.client.List(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("%d actions", len(list.Items))
	}
	a := list.Items[0]
	if a.Spec.Action != mdmv1alpha1.ActionWipe || a.Spec.Confirm != "Wipe" || a.Spec.Selector.MatchLabels["site"] != "berlin" || !strings.HasPrefix(a.Name, "wipe-") {
		t.Errorf("created %s: %+v", a.Name, a.Spec)
	}
	want := "NAME" + strings.Repeat(" ", len(a.Name)-1) + "ACTION   DEVICES      SELECTOR\n" + a.Name + "   Wipe     <selector>   site=berlin\n"
	if out.String() != want {
		t.Errorf("-o wide printed\n%q\nwant\n%q", out.String(), want)
	}
}

func TestListDevicesFilters(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-d)); return &t }
	device := func(name string, lastSeen, enrolled *metav1.Time, connected bool, attrs map[string]string) *mdmv1alpha1.Device {
		d := &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: "fleet", Name: name},
			Spec:   mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformLinux, Attributes: attrs},
			Status: mdmv1alpha1.DeviceStatus{LastSeen: lastSeen, EnrolledAt: enrolled}}
		if connected {
			d.Status.Conditions = []metav1.Condition{{Type: mdmv1alpha1.DeviceConditionConnected, Status: metav1.ConditionTrue}}
		}
		return d
	}
	s := fakeSession(t,
		device("never", nil, nil, false, nil),
		device("stale", at(10*24*time.Hour), at(40*24*time.Hour), false, map[string]string{"cityId": "SF"}),
		// Seen long ago by lastSeen, but holding its stream now: seen.
		device("streaming", at(30*24*time.Hour), at(2*24*time.Hour), true, map[string]string{"cityId": "SF"}),
		device("recent", at(time.Minute), at(time.Hour), false, map[string]string{"cityId": "NY"}),
	)
	for _, c := range []struct {
		q    deviceQuery
		want string
	}{
		{deviceQuery{notSeen: "7d"}, "never stale"},
		{deviceQuery{seenWithin: "1h"}, "recent streaming"},
		{deviceQuery{enrolledWithin: "30d"}, "recent streaming"},
		{deviceQuery{attrs: []string{"cityId=SF"}}, "stale streaming"},
		{deviceQuery{attrs: []string{"cityId=SF"}, seenWithin: "1d"}, "streaming"},
		{deviceQuery{notSeen: "1s", enrolledWithin: "1d"}, "recent"},
		{deviceQuery{notSeen: "1d", enrolledWithin: "1d"}, ""},
	} {
		var out bytes.Buffer
		cmd := &cobra.Command{}
		cmd.SetOut(&out)
		cmd.SetContext(context.Background())
		c.q.output = "name"
		if err := listDevices(cmd, s, &c.q, now); err != nil {
			t.Fatal(err)
		}
		got := strings.Fields(strings.ReplaceAll(out.String(), "device.mdm.kubemdm.io/", ""))
		if strings.Join(got, " ") != c.want {
			t.Errorf("%+v: %v, want %q", c.q, got, c.want)
		}
	}
	var out, errOut bytes.Buffer
	cmd := &cobra.Command{}
	cmd.SetContext(context.Background())
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	if err := listDevices(cmd, s, &deviceQuery{notSeen: "1d", enrolledWithin: "1d"}, now); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 || errOut.String() != "No resources found in fleet namespace.\n" {
		t.Errorf("no device: stdout %q, stderr %q", out.String(), errOut.String())
	}
	if err := listDevices(cmd, s, &deviceQuery{output: "table"}, now); err == nil || !strings.Contains(err.Error(), `-o "table"`) {
		t.Errorf("-o table: %v", err)
	}
	if err := listDevices(cmd, s, &deviceQuery{notSeen: "a week"}, now); err == nil || !strings.Contains(err.Error(), `--not-seen "a week"`) {
		t.Errorf("a bad duration: %v", err)
	}
}
