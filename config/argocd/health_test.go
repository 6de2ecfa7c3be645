// Package argocd tests the Argo CD health script with the Lua interpreter
// Argo CD itself embeds.
package argocd

import (
	"os"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(x)
	case int:
		return lua.LNumber(x)
	case bool:
		return lua.LBool(x)
	}
	return lua.LNil
}

func health(t *testing.T, obj map[string]any) (string, string) {
	t.Helper()
	script, err := os.ReadFile("health.lua")
	if err != nil {
		t.Fatal(err)
	}
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, obj))
	fn, err := L.LoadString(string(script))
	if err != nil {
		t.Fatal(err)
	}
	L.Push(fn)
	if err := L.PCall(0, 1, nil); err != nil {
		t.Fatal(err)
	}
	hs := L.Get(-1).(*lua.LTable)
	return hs.RawGetString("status").String(), hs.RawGetString("message").String()
}

func object(kind string, generation, observed int, conds ...map[string]any) map[string]any {
	list := []any{}
	for _, c := range conds {
		list = append(list, c)
	}
	return map[string]any{"kind": kind, "metadata": map[string]any{"generation": generation},
		"status": map[string]any{"observedGeneration": observed, "conditions": list}}
}

func cond(typ, status, reason string) map[string]any {
	return map[string]any{"type": typ, "status": status, "reason": reason, "message": typ + " " + reason}
}

func TestHealth(t *testing.T) {
	for name, tc := range map[string]struct {
		obj  map[string]any
		want string
	}{
		"no status":               {map[string]any{"kind": "Device", "metadata": map[string]any{"generation": 1}}, "Progressing"},
		"stale generation":        {object("Device", 2, 1, cond("Ready", "True", "ConfigApplied")), "Progressing"},
		"converged device":        {object("Device", 2, 2, cond("Ready", "True", "ConfigApplied")), "Healthy"},
		"device awaiting agent":   {object("Device", 1, 1, cond("Ready", "False", "AwaitingEnrollment"), cond("Reconciling", "True", "AwaitingEnrollment")), "Progressing"},
		"failed configuration":    {object("Device", 1, 1, cond("Ready", "False", "ConfigurationFailed"), cond("Stalled", "True", "ConfigurationFailed")), "Degraded"},
		"retired device":          {object("Device", 1, 1, cond("Ready", "False", "Released")), "Suspended"},
		"issued token":            {object("EnrollmentToken", 1, 1, cond("Ready", "True", "Issued")), "Healthy"},
		"expired token":           {object("EnrollmentToken", 1, 1, cond("Ready", "False", "Expired")), "Suspended"},
		"running action":          {object("DeviceAction", 1, 0, cond("Reconciling", "True", "Running")), "Progressing"},
		"succeeded action":        {object("DeviceAction", 1, 1, cond("Ready", "True", "Succeeded")), "Healthy"},
		"partly succeeded action": {object("DeviceAction", 1, 1, cond("Ready", "False", "PartiallySucceeded")), "Degraded"},
		"expired action":          {object("DeviceAction", 1, 1, cond("Ready", "False", "Expired")), "Degraded"},
	} {
		got, msg := health(t, tc.obj)
		if got != tc.want {
			t.Errorf("%s: %s (%s), want %s", name, got, msg, tc.want)
		}
	}
}
