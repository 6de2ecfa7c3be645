package gateway

import "sync"

// inParallel calls fn for every item, at most n at once, and returns once
// every call has: the gateway's writes to many objects (presence, sweeps,
// command results) go out side by side, within a bound the apiserver
// can take.
func inParallel[T any](n int, items []T, fn func(T)) {
	work := make(chan T)
	var wg sync.WaitGroup
	for range min(n, len(items)) {
		wg.Go(func() {
			for item := range work {
				fn(item)
			}
		})
	}
	for _, item := range items {
		work <- item
	}
	close(work)
	wg.Wait()
}
