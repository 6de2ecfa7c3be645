package patch

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// maxSuperseded bounds what Superseded remembers; past it, it starts over
// and the worst that follows is a conflict answered by a requeue.
const maxSuperseded = 10_000

// Superseded remembers the versions of objects a reconciler has itself
// replaced: a pass that writes both the status and the finalizers writes
// twice, and the cache, and the watch events, show the version between
// the two writes before the final one. A reconcile of that in-between
// version would find the status it just wrote missing (or the finalizer it
// just removed still there), write it again on a resourceVersion already
// gone, and conflict: 2 to 3 writes in 100 for a fleet of Devices created
// at once, and the end of every large DeviceAction.
type Superseded struct {
	mu sync.Mutex
	rv map[types.UID]string
}

// Stale reports whether obj, as read, is a version this reconciler has
// already replaced: the event of the newer version is on its way.
func (s *Superseded) Stale(obj client.Object) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rv, ok := s.rv[obj.GetUID()]
	switch {
	case !ok:
		return false
	case rv == obj.GetResourceVersion():
		return true
	}
	delete(s.rv, obj.GetUID())
	return false
}

func (s *Superseded) record(uid types.UID, resourceVersion string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rv == nil || len(s.rv) >= maxSuperseded {
		s.rv = map[types.UID]string{}
	}
	s.rv[uid] = resourceVersion
}

// NewHelper is NewHelper for a reconciler that skips stale versions: it
// reports stale, and no helper, when the cache shows the version between
// this reconciler's own status and finalizer writes, whose event is
// followed by the newer one's; the reconcile has nothing to do until then.
func (s *Superseded) NewHelper(obj client.Object) (h *Helper, stale bool) {
	if s.Stale(obj) {
		return nil, true
	}
	h = NewHelper(obj)
	h.superseded = s
	return h, false
}
