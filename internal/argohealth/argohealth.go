// Package argohealth runs the Argo CD health script of config/argocd with
// the Lua interpreter Argo CD embeds, so tests can hold it to kstatus.
package argohealth

import (
	"fmt"
	"os"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Evaluate runs the health script at path on obj and returns Argo CD's
// health status and message.
func Evaluate(path string, obj map[string]any) (string, string, error) {
	script, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, obj))
	fn, err := L.LoadString(string(script))
	if err != nil {
		return "", "", fmt.Errorf("loading %s: %w", path, err)
	}
	L.Push(fn)
	if err := L.PCall(0, 1, nil); err != nil {
		return "", "", fmt.Errorf("running %s: %w", path, err)
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("%s returned %s, not a table", path, L.Get(-1).Type())
	}
	return hs.RawGetString("status").String(), hs.RawGetString("message").String(), nil
}

// Kstatus computes the kstatus of obj, as kubectl wait, Flux and cli-utils do.
func Kstatus(obj map[string]any) (status.Status, error) {
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		return "", err
	}
	return res.Status, nil
}

// ArgoFor is the Argo CD health that matches a kstatus.
func ArgoFor(s status.Status) string {
	switch s {
	case status.CurrentStatus:
		return "Healthy"
	case status.FailedStatus:
		return "Degraded"
	case status.NotFoundStatus:
		return "Missing"
	default: // InProgress, Terminating, Unknown
		return "Progressing"
	}
}

// ToMap turns a typed object into the map both evaluators read, with
// integers as int64 as the apiserver's JSON decodes them.
func ToMap(obj any) (map[string]any, error) {
	return runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
}

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
	case int64:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case bool:
		return lua.LBool(x)
	}
	return lua.LNil
}
