package docs

import (
	"reflect"
	"testing"
)

func TestParseConsoleBlocks(t *testing.T) {
	readme := "```sh\n$ not run\n```\n" +
		"```console\n$ kubectl get devices\nNAME   AGE\nsim    3s\n\n$ curl -sS \\\n    https://x/Poll\n{}\n```\n" +
		"* item\n\n  ```console\n  $ kubectl create -f - <<'EOF'\n  kind: X\n  $ not a command\n  EOF\n  created\n  ```\n"
	want := []step{
		{line: 5, command: "kubectl get devices", want: []string{"NAME   AGE", "sim    3s"}},
		{line: 9, command: "curl -sS \\\n    https://x/Poll", want: []string{"{}"}},
		{line: 16, command: "kubectl create -f - <<'EOF'\nkind: X\n$ not a command\nEOF", want: []string{"created"}},
	}
	if got := parseConsoleBlocks(readme); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
}

func TestMismatch(t *testing.T) {
	for _, tc := range []struct {
		name      string
		want, got []string
		ok        bool
	}{
		{"ages and column widths", []string{"NAME  PHASE  AGE", "sim   Ready  3s"}, []string{"NAME  PHASE    AGE", "sim   Ready    2m10s"}, true},
		{"timestamps", []string{`{"requestDate":"2026-11-22T13:42:38Z"}`}, []string{`{"requestDate":"2027-01-02T03:04:05Z"}`}, true},
		{"elision", []string{`"token": "kmdm_et_…",`, `error when creating "STDIN": ... needs the "wipe" verb`}, []string{`"token": "kmdm_et_abc",`, `error when creating "STDIN": admission webhook denied: needs the "wipe" verb`}, true},
		{"empty cells", []string{"pixel   Android   Registered            1s"}, []string{"pixel   Android   Registered      5s"}, true},
		{"another value", []string{"sim   Succeeded   0"}, []string{"sim   Failed   0"}, false},
		{"a count is not an age", []string{"demo   3"}, []string{"demo   4"}, false},
		{"a missing line", []string{"a", "b"}, []string{"a"}, false},
		{"an extra line", []string{"a"}, []string{"a", "b"}, false},
		{"a trailing blank line", []string{"a"}, []string{"a", ""}, true},
		{"a prefix is not the value", []string{`"hash": "…"`}, []string{`"hash": "…"`, `x`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m := mismatch(tc.want, tc.got); (m == "") != tc.ok {
				t.Errorf("mismatch(%q, %q) = %q", tc.want, tc.got, m)
			}
		})
	}
}

func TestExpectsFailure(t *testing.T) {
	for want, fails := range map[string]bool{
		`Error from server (NotFound): secrets "x" not found`:                       true,
		`The DeviceAction "wipe-oops" is invalid: spec.confirm: Invalid value: ...`: true,
		`error: timed out waiting for the condition`:                                true,
		`{"code":"unauthenticated","message":"a client certificate is required"}`:   false,
		`deviceaction.mdm.kubemdm.io/lock-demo created`:                             false,
	} {
		if got := expectsFailure([]string{want}); got != fails {
			t.Errorf("expectsFailure(%q) = %v", want, got)
		}
	}
}
