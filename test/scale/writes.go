package scale

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Writes counts write requests by resource, "devices" or "devices/status";
// those refused with a conflict under "devices/status(409)".
type Writes map[string]float64

// Sub is what w counted that before had not.
func (w Writes) Sub(before Writes) Writes {
	out := Writes{}
	for k, v := range w {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Less is w without what own counted.
func (w Writes) Less(own Writes) Writes {
	out := maps.Clone(w)
	for k, v := range own {
		out[k] -= v
		if out[k] == 0 {
			delete(out, k)
		}
	}
	return out
}

// Of sums the counts of the resources named, with their subresources.
func (w Writes) Of(resources ...string) float64 {
	var n float64
	for k, v := range w {
		base, _, _ := strings.Cut(k, "/")
		if slices.Contains(resources, base) {
			n += v
		}
	}
	return n
}

// Total sums every count but the Leases', which the manager renews on a
// timer whatever the fleet does.
func (w Writes) Total() float64 {
	var n float64
	for k, v := range w {
		if k != "leases" {
			n += v
		}
	}
	return n
}

func (w Writes) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(w)) {
		parts = append(parts, fmt.Sprintf("%s=%.0f", k, w[k]))
	}
	return strings.Join(parts, " ")
}

// apiMetrics reads the apiserver's own count of the requests it served.
type apiMetrics struct {
	rest rest.Interface
}

func newAPIMetrics(cfg *rest.Config) (*apiMetrics, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &apiMetrics{rest: cs.CoreV1().RESTClient()}, nil
}

// writes is the apiserver's count of write requests so far, whatever
// their response: a conflict costs the apiserver as much as a success.
func (m *apiMetrics) writes(ctx context.Context) (Writes, error) {
	raw, err := m.rest.Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the apiserver's metrics: %w", err)
	}
	return parseWrites(raw)
}

// parseWrites sums apiserver_request_total over the write verbs, by
// resource and subresource.
func parseWrites(raw []byte) (Writes, error) {
	out := Writes{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "apiserver_request_total{")
		if !ok {
			continue
		}
		labelText, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		labels := map[string]string{}
		for pair := range strings.SplitSeq(labelText, ",") {
			k, v, _ := strings.Cut(pair, "=")
			labels[k] = strings.Trim(v, `"`)
		}
		switch labels["verb"] {
		case "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION":
		default:
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return nil, fmt.Errorf("reading apiserver_request_total: %w", err)
		}
		key := labels["resource"]
		if sub := labels["subresource"]; sub != "" {
			key += "/" + sub
		}
		if labels["code"] == "409" {
			// Counted apart, so that a figure shows how many writes
			// lost a race rather than changed anything.
			key += "(409)"
		}
		out[key] += n
	}
	return out, sc.Err()
}

// writeCounter is a client that counts its own writes the way the
// apiserver does, so that they can be taken from the apiserver's count. It
// counts Create, Update, Patch and Delete, which are all the harness uses:
// a write through Status(), Apply or DeleteAllOf would be charged to the
// manager.
type writeCounter struct {
	client.Client
	mu     sync.Mutex
	counts Writes
}

func newWriteCounter(c client.Client) *writeCounter {
	return &writeCounter{Client: c, counts: Writes{}}
}

func (w *writeCounter) count(o client.Object, sub string) {
	gvk, err := w.GroupVersionKindFor(o)
	key := "unknown"
	if err == nil {
		if m, err := w.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err == nil {
			key = m.Resource.Resource
		}
	}
	if sub != "" {
		key += "/" + sub
	}
	w.mu.Lock()
	w.counts[key]++
	w.mu.Unlock()
}

// snapshot is what the client wrote so far.
func (w *writeCounter) snapshot() Writes {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.counts)
}

func (w *writeCounter) Create(ctx context.Context, o client.Object, opts ...client.CreateOption) error {
	w.count(o, "")
	return w.Client.Create(ctx, o, opts...)
}

func (w *writeCounter) Update(ctx context.Context, o client.Object, opts ...client.UpdateOption) error {
	w.count(o, "")
	return w.Client.Update(ctx, o, opts...)
}

func (w *writeCounter) Patch(ctx context.Context, o client.Object, p client.Patch, opts ...client.PatchOption) error {
	w.count(o, "")
	return w.Client.Patch(ctx, o, p, opts...)
}

func (w *writeCounter) Delete(ctx context.Context, o client.Object, opts ...client.DeleteOption) error {
	w.count(o, "")
	return w.Client.Delete(ctx, o, opts...)
}

// mark is where the counts stood at a moment.
type mark struct{ api, own Writes }

func (h *Harness) mark(ctx context.Context) (mark, error) {
	api, err := h.api.writes(ctx)
	return mark{api: api, own: h.own.snapshot()}, err
}

// managerWrites are the writes since m that the harness did not make:
// the manager's.
func (h *Harness) managerWrites(ctx context.Context, m mark) (Writes, error) {
	now, err := h.mark(ctx)
	if err != nil {
		return nil, err
	}
	return now.api.Sub(m.api).Less(now.own.Sub(m.own)), nil
}
