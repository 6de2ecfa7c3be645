package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestCountGate(t *testing.T) {
	var g countGate
	key, other := types.NamespacedName{Namespace: "a", Name: "b"}, types.NamespacedName{Namespace: "a", Name: "c"}
	t0 := time.Unix(1000, 0)
	for _, step := range []struct {
		name string
		key  types.NamespacedName
		at   time.Duration
		mark bool
		want time.Duration
	}{
		{name: "never counted", key: key, at: 0, want: 0, mark: true},
		{name: "just counted", key: key, at: 300 * time.Millisecond, want: 700 * time.Millisecond},
		{name: "another object is not held", key: other, at: 300 * time.Millisecond, want: 0},
		{name: "the interval passed", key: key, at: time.Second, want: 0, mark: true},
		{name: "held again after a count", key: key, at: 1500 * time.Millisecond, want: 500 * time.Millisecond},
	} {
		if got := g.wait(step.key, t0.Add(step.at), time.Second); got != step.want {
			t.Errorf("%s: wait %s, want %s", step.name, got, step.want)
		}
		if step.mark {
			g.mark(step.key, t0.Add(step.at))
		}
	}
	g.forget(key)
	if got := g.wait(key, t0.Add(1500*time.Millisecond), time.Second); got != 0 {
		t.Errorf("forgotten: wait %s, want 0", got)
	}
}
