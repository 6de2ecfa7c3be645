package scale

import (
	"fmt"
	"strings"
	"time"
)

// progress notes when counts pass each tenth of a whole, so that a phase's
// log shows where its time went rather than only its end.
type progress struct {
	whole  int
	tenths map[string]int
	steps  []string
}

func newProgress(whole int) *progress {
	return &progress{whole: max(whole, 1), tenths: map[string]int{}}
}

// count notes the tenths of the whole that n, counting what, has passed
// since the last call.
func (p *progress) count(at time.Duration, what string, n int) {
	next := p.tenths[what]
	for ; next < 10 && n*10 >= (next+1)*p.whole; next++ {
		p.note(at, fmt.Sprintf("%s=%d0%%", what, next+1))
	}
	p.tenths[what] = next
}

// done reports whether n, counting what, has passed the whole.
func (p *progress) done(what string) bool { return p.tenths[what] == 10 }

// note records one event at its time.
func (p *progress) note(at time.Duration, event string) {
	p.steps = append(p.steps, fmt.Sprintf("%s %s", at.Round(time.Millisecond), event))
}

func (p *progress) String() string { return strings.Join(p.steps, "; ") }
