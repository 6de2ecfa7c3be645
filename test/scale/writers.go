package scale

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// writerTally attributes the writes to each Device, as its watch shows
// them, to the field managers whose managedFields entry each write moved:
// which part of the system writes a Device more than the design says.
// The apiserver's request counts say how many writes there were, not
// whose they were.
type writerTally struct {
	mu sync.Mutex
	// perDevice holds, for each Device, who made each write seen on it,
	// its create included.
	perDevice map[string][]string
	// byManager counts the writes attributed to each field manager (with
	// its subresource); one write may move two entries.
	byManager map[string]int
	// firstAfter holds, for each Device and field manager, how long after
	// the create the manager first wrote it (to the second, as
	// managedFields keep time): how long a writer's wait must be to catch
	// another's write.
	firstAfter map[string]map[string]time.Duration
	// unattributed writes moved no entry: a manager's second write within
	// the second of its first that changed no field it did not own.
	unattributed int
}

func newWriterTally() *writerTally {
	return &writerTally{perDevice: map[string][]string{}, byManager: map[string]int{}, firstAfter: map[string]map[string]time.Duration{}}
}

func managerKey(e metav1.ManagedFieldsEntry) string {
	return e.Manager + "/" + e.Subresource
}

// added counts a Device's create, by the managers it was created with.
func (t *writerTally) added(d *mdmv1alpha1.Device) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var writers []string
	for _, e := range d.ManagedFields {
		t.byManager[managerKey(e)]++
		writers = append(writers, managerKey(e))
	}
	t.perDevice[d.Name] = append(t.perDevice[d.Name], strings.Join(writers, "+"))
}

// updated counts one write between two versions of a Device.
func (t *writerTally) updated(old, d *mdmv1alpha1.Device) {
	if old.ResourceVersion == d.ResourceVersion {
		return // a resync, not a write
	}
	before := map[string]metav1.ManagedFieldsEntry{}
	for _, e := range old.ManagedFields {
		before[managerKey(e)+"/"+string(e.Operation)] = e
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var writers []string
	for _, e := range d.ManagedFields {
		prev, ok := before[managerKey(e)+"/"+string(e.Operation)]
		if ok && prev.Time.Equal(e.Time) && fieldsEqual(prev.FieldsV1, e.FieldsV1) {
			continue
		}
		t.byManager[managerKey(e)]++
		writers = append(writers, managerKey(e))
		if !ok && e.Time != nil {
			if t.firstAfter[d.Name] == nil {
				t.firstAfter[d.Name] = map[string]time.Duration{}
			}
			t.firstAfter[d.Name][managerKey(e)] = e.Time.Sub(d.CreationTimestamp.Time)
		}
	}
	if len(writers) == 0 {
		t.unattributed++
		writers = append(writers, "?")
	}
	t.perDevice[d.Name] = append(t.perDevice[d.Name], strings.Join(writers, "+"))
}

func fieldsEqual(a, b *metav1.FieldsV1) bool {
	if a == nil || b == nil {
		return a == b
	}
	return bytes.Equal(a.Raw, b.Raw)
}

// String shows how many Devices took how many writes, then each manager's.
func (t *writerTally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	devices, sequences := map[int]int{}, map[string]int{}
	least := -1
	for _, w := range t.perDevice {
		devices[len(w)]++
		if least < 0 || len(w) < least {
			least = len(w)
		}
	}
	for _, w := range t.perDevice {
		if len(w) > least {
			sequences[strings.Join(w, ", ")]++
		}
	}
	var s strings.Builder
	for i, n := range slices.Sorted(maps.Keys(devices)) {
		if i > 0 {
			s.WriteString(", ")
		}
		fmt.Fprintf(&s, "%d writes on %d Devices", n, devices[n])
	}
	s.WriteString("; by field manager:")
	for _, m := range slices.Sorted(maps.Keys(t.byManager)) {
		fmt.Fprintf(&s, " %s=%d", m, t.byManager[m])
	}
	if len(sequences) > 0 {
		byCount := slices.SortedFunc(maps.Keys(sequences), func(a, b string) int {
			return cmp.Or(sequences[b]-sequences[a], strings.Compare(a, b))
		})
		var most []string
		for _, seq := range byCount[:min(len(byCount), 6)] {
			most = append(most, fmt.Sprintf("[%s] on %d", seq, sequences[seq]))
		}
		fmt.Fprintf(&s, "; the Devices written more, in order: %s", strings.Join(most, ", "))
	}
	all, more := map[string][]time.Duration{}, map[string][]time.Duration{}
	for name, firsts := range t.firstAfter {
		for m, d := range firsts {
			all[m] = append(all[m], d)
			if len(t.perDevice[name]) > least {
				more[m] = append(more[m], d)
			}
		}
	}
	firstWrites(&s, "", all)
	firstWrites(&s, " on the Devices written more", more)
	if t.unattributed > 0 {
		fmt.Fprintf(&s, "; %d not attributable (a manager's second write within the second, no field newly owned)", t.unattributed)
	}
	return s.String()
}

// firstWrites describes, for each field manager, when it first wrote the
// Devices: how long after their create.
func firstWrites(s *strings.Builder, which string, by map[string][]time.Duration) {
	for _, m := range slices.Sorted(maps.Keys(by)) {
		d := slices.Sorted(slices.Values(by[m]))
		at := func(q float64) time.Duration { return d[min(int(q*float64(len(d))), len(d)-1)] }
		fmt.Fprintf(s, "; %s%s first wrote %s after the create at the median, %s at p90, %s at most", m, which, at(0.5), at(0.9), d[len(d)-1])
	}
}
