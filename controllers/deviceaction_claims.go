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

// acquire waits until none of keys is held, then holds them all. It
// reports whether it had to wait: another reconcile may have changed the
// devices meanwhile.
func (c *deviceClaims) acquire(keys []string) (waited bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		c.held = map[string]struct{}{}
		c.free = sync.NewCond(&c.mu)
	}
	for c.anyHeld(keys) {
		waited = true
		c.free.Wait()
	}
	for _, k := range keys {
		c.held[k] = struct{}{}
	}
	return waited
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
// claim. It reports whether it waited for another reconcile to give any of
// them back.
func (c *claim) take(namespace string, names []string) (waited bool) {
	if c.keys != nil {
		return false
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = namespace + "/" + n
	}
	waited = c.claims.acquire(keys)
	c.keys = keys
	return waited
}

// release gives back what take claimed.
func (c *claim) release() {
	c.claims.release(c.keys)
	c.keys = nil
}
