package scale

import (
	"testing"
	"time"
)

func TestProgressNotesEachTenthOnce(t *testing.T) {
	p := newProgress(20)
	p.count(time.Second, "connected", 1)
	p.count(2*time.Second, "connected", 6)
	p.note(2*time.Second, "listening")
	p.count(3*time.Second, "connected", 5) // a count may fall back
	p.count(4*time.Second, "connected", 20)
	want := "2s connected=10%; 2s connected=20%; 2s connected=30%; 2s listening; " +
		"4s connected=40%; 4s connected=50%; 4s connected=60%; 4s connected=70%; 4s connected=80%; 4s connected=90%; 4s connected=100%"
	if got := p.String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if !p.done("connected") || p.done("synced") {
		t.Errorf("done: connected %v, synced %v", p.done("connected"), p.done("synced"))
	}
}
