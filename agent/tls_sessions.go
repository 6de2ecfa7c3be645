package agent

import (
	"crypto/sha256"
	"crypto/tls"
	"sync"
)

// tlsSessions keeps the agent's TLS sessions with the gateway from one
// connection to the next, so that a reconnect, above all a whole fleet's
// after a gateway restart, resumes its session instead of making a full
// handshake: no certificate signed or verified at either end. A resumed
// session presents the certificate it began with, so sessions are kept for
// one certificate and one trust and dropped when either changes: after a
// renewal or a new enrollment the agent presents its new certificate.
type tlsSessions struct {
	mu    sync.Mutex
	owner [sha256.Size]byte
	cache tls.ClientSessionCache
}

// tlsSessionsKept is how many sessions the agent keeps, by gateway
// address: it talks to one, and a second covers a move to another.
const tlsSessionsKept = 2

// cacheFor returns the sessions of connections that present cert and verify
// the gateway with trust.
func (s *tlsSessions) cacheFor(cert *tls.Certificate, trust Trust) tls.ClientSessionCache {
	h := sha256.New()
	for _, part := range [][]byte{cert.Certificate[0], trust.CABundle, []byte(trust.Pin)} {
		h.Write(part)
		h.Write([]byte{0})
	}
	var id [sha256.Size]byte
	h.Sum(id[:0])
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache == nil || s.owner != id {
		s.cache, s.owner = tls.NewLRUClientSessionCache(tlsSessionsKept), id
	}
	return s.cache
}
