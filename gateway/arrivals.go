package gateway

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// arrivals tells the calls waiting for a Device the cache has yet to show
// when it does. During an enrollment storm thousands of agents subscribe a
// moment after their Device was created, while the informer is seconds
// behind: each waits on a channel instead of polling the cache.
type arrivals struct {
	mu      sync.Mutex
	waiting map[types.UID][]chan struct{}
}

func newArrivals() *arrivals {
	return &arrivals{waiting: map[types.UID][]chan struct{}{}}
}

// wait returns a channel closed once the Device with uid reaches the
// cache, and a function that stops waiting. Register before reading the
// cache, so that an arrival between the read and the wait is not missed.
func (a *arrivals) wait(uid types.UID) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	a.mu.Lock()
	a.waiting[uid] = append(a.waiting[uid], ch)
	a.mu.Unlock()
	return ch, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		chans := a.waiting[uid]
		for i, c := range chans {
			if c == ch {
				chans = append(chans[:i], chans[i+1:]...)
				break
			}
		}
		if len(chans) == 0 {
			delete(a.waiting, uid)
		} else {
			a.waiting[uid] = chans
		}
	}
}

// arrived wakes the calls waiting for the Device with uid.
func (a *arrivals) arrived(uid types.UID) {
	a.mu.Lock()
	chans := a.waiting[uid]
	delete(a.waiting, uid)
	a.mu.Unlock()
	for _, ch := range chans {
		close(ch)
	}
}
