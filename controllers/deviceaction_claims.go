package controllers

import "sync"

// deviceClaims keeps two reconciles of actions that share a device from
// running at once, while actions on other devices run side by side. Two
// actions on one device decide from each other's rows (a withdrawn change
// is handed over to a newer action, eligibility is judged on the phase
// another action set), and their writes to the Device carry no
// resourceVersion that would catch a decision made on rows the other had
// not stored yet. A reconcile claims its devices before it reads them and
// gives them back only once its status patch is written.
//
// A reconcile claims all its devices at once or waits for all of them, so
// that two reconciles never each hold a part of what the other needs.
type deviceClaims struct {
	mu   sync.Mutex
	free *sync.Cond
	held map[string]struct{}
}

// acquire waits until none of keys is held, then holds them all.
func (c *deviceClaims) acquire(keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		c.held = map[string]struct{}{}
		c.free = sync.NewCond(&c.mu)
	}
	for c.anyHeld(keys) {
		c.free.Wait()
	}
	for _, k := range keys {
		c.held[k] = struct{}{}
	}
}

func (c *deviceClaims) anyHeld(keys []string) bool {
	for _, k := range keys {
		if _, ok := c.held[k]; ok {
			return true
		}
	}
	return false
}

// release gives keys back and wakes the reconciles waiting for any of them.
func (c *deviceClaims) release(keys []string) {
	if len(keys) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		delete(c.held, k)
	}
	c.free.Broadcast()
}

// claim is what one reconcile holds: the devices of one action, claimed
// once and given back when the reconcile returns.
type claim struct {
	claims *deviceClaims
	keys   []string
}

// take claims the named devices of namespace, unless this reconcile already
// holds its action's devices: an action's rows are the targets its start
// resolved, so a reconcile that starts and then follows needs no second
// claim.
func (c *claim) take(namespace string, names []string) {
	if c.keys != nil {
		return
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = namespace + "/" + n
	}
	c.claims.acquire(keys)
	c.keys = keys
}

// release gives back what take claimed.
func (c *claim) release() {
	c.claims.release(c.keys)
	c.keys = nil
}
