package scale

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemdm/kubemdm/internal/testenv"
)

// createWorkers is how many clients create objects at once, in the
// baseline and wherever the harness creates many objects.
const createWorkers = 8

// Baseline is what the apiserver of this run does on its own.
type Baseline struct {
	// Creates ConfigMaps were created by createWorkers workers in CreateTime.
	Creates    int
	CreateTime time.Duration
	// WatchP50 and WatchP99 are from a create call to its watch event.
	WatchP50, WatchP99 time.Duration
	// Devices is the same apiserver's cost of Device-shaped objects.
	Devices DeviceBaseline
}

// CreateRate is objects created per second.
func (b Baseline) CreateRate() float64 { return float64(b.Creates) / b.CreateTime.Seconds() }

// maxDeviceBaseline bounds the Device-shaped baseline, whose rate does not
// depend on the count, and which costs the run three writes per object.
const maxDeviceBaseline = 1000

// baseline creates n ConfigMaps with createWorkers workers, then times
// watchSamples creates one by one from the call to the watch event.
func (h *Harness) baseline(ctx context.Context, n, watchSamples int) (Baseline, error) {
	b := Baseline{Creates: n}
	ns, err := h.namespace(ctx, "baseline-")
	if err != nil {
		return b, err
	}
	began := time.Now()
	err = h.createAll(ctx, n, func(i int) client.Object {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("cm-%06d", i)},
			Data: map[string]string{"serialNumber": fmt.Sprintf("SN%06d", i)}}
	})
	b.CreateTime = time.Since(began)
	if err != nil {
		return b, err
	}

	wns, err := h.namespace(ctx, "baseline-watch-")
	if err != nil {
		return b, err
	}
	seen := make(chan string, watchSamples)
	stop, err := testenv.Watch(ctx, h.cfg, h.scheme, &corev1.ConfigMapList{}, func(ev watch.Event) {
		if cm, ok := ev.Object.(*corev1.ConfigMap); ok && ev.Type == watch.Added {
			seen <- cm.Name
		}
	}, client.InNamespace(wns))
	if err != nil {
		return b, err
	}
	defer stop()
	latencies := make([]time.Duration, 0, watchSamples)
	for i := range watchSamples {
		name := fmt.Sprintf("w-%04d", i)
		sent := time.Now()
		if err := h.client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: wns, Name: name}}); err != nil {
			return b, err
		}
		select {
		case got := <-seen:
			if got != name {
				return b, fmt.Errorf("the watch saw %s before %s", got, name)
			}
		case <-time.After(30 * time.Second):
			return b, fmt.Errorf("the watch did not see %s within 30s", name)
		}
		latencies = append(latencies, time.Since(sent))
	}
	slices.Sort(latencies)
	b.WatchP50, b.WatchP99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
	// Before any phase counts writes: the status applies go around the
	// harness's write counter.
	b.Devices, err = h.deviceBaseline(ctx, min(n, maxDeviceBaseline))
	return b, err
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func (h *Harness) namespace(ctx context.Context, prefix string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := h.client.Create(ctx, ns); err != nil {
		return "", err
	}
	return ns.Name, nil
}

// createAll creates the n objects object returns, createWorkers at a time.
func (h *Harness) createAll(ctx context.Context, n int, object func(i int) client.Object) error {
	return forAll(n, func(i int) error { return h.client.Create(ctx, object(i)) })
}

// forAll calls fn for 0..n-1, createWorkers at a time, and stops at the
// first error.
func forAll(n int, fn func(i int) error) error {
	next := make(chan int)
	errs := make(chan error, createWorkers)
	var wg sync.WaitGroup
	for range createWorkers {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
feed:
	for i := range n {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return err
	}
	select {
	case err = <-errs:
	default:
	}
	return err
}
