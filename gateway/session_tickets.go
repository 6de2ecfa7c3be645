package gateway

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ticketKeyring gives every gateway replica, and every restart of one, the
// same TLS session ticket keys, derived from a secret they all read (the
// Secret EnsureTicketSecret keeps). When a gateway restarts, its whole
// fleet reconnects at once; with tickets that outlive the process, an
// agent resumes its session instead of a full handshake, and neither end
// signs or verifies a certificate chain: the costliest part of a reconnect
// storm, on the gateway and on the devices. Go's own keys are random per
// process, so no ticket survived a restart or reached another replica.
//
// A ticket carries the client certificate it was issued for. The server
// still checks that certificate's chain against the device CA and its
// expiry on resumption, and every call still authenticates its Device
// from the cache. A resuming client, though, takes the server's knowledge
// of the ticket key as proof that it is the gateway: the secret is worth
// as much as the gateway's serving key, and is kept beside it (ADR 16).
type ticketKeyring struct {
	// prk is the secret's HKDF extract; each period's key is expanded
	// from it.
	prk []byte
	now func() time.Time

	mu sync.Mutex
	// period is the one whose key issues tickets; it only moves forward,
	// under mu.
	period atomic.Int64
}

// ticketKeyPeriod is how long a ticket key issues tickets; a ticket is
// accepted for one more period, so between one and two periods in all. A
// device whose stream outlasted that makes a full handshake when it next
// connects, as every device did before.
const ticketKeyPeriod = 24 * time.Hour

// minTicketSecret is the shortest secret tickets are derived from.
const minTicketSecret = 32

// newTicketKeyring derives ticket keys from secret, or returns nil, which
// leaves Go's keys, random per process, when there is no secret.
func newTicketKeyring(secret []byte, now func() time.Time) (*ticketKeyring, error) {
	if len(secret) == 0 {
		return nil, nil
	}
	if len(secret) < minTicketSecret {
		return nil, fmt.Errorf("the session ticket secret has %d bytes, fewer than %d", len(secret), minTicketSecret)
	}
	prk, err := hkdf.Extract(sha256.New, secret, []byte("kubemdm gateway session tickets"))
	if err != nil {
		return nil, fmt.Errorf("deriving session ticket keys: %w", err)
	}
	k := &ticketKeyring{prk: prk, now: now}
	k.period.Store(math.MinInt64)
	return k, nil
}

// keys are the keys of period p: its own first, which issues tickets; the
// one before, whose tickets are still good; and the next, so that a
// replica whose clock is a little behind opens the tickets of one already
// in the next period.
func (k *ticketKeyring) keys(p int64) [][32]byte {
	return [][32]byte{k.derive(p), k.derive(p - 1), k.derive(p + 1)}
}

func (k *ticketKeyring) derive(p int64) [32]byte {
	info := binary.BigEndian.AppendUint64([]byte("period "), uint64(p))
	key, err := hkdf.Expand(sha256.New, k.prk, string(info), 32)
	if err != nil {
		// Only a length beyond 255 hash blocks fails.
		panic(err)
	}
	return [32]byte(key)
}

func (k *ticketKeyring) current() int64 {
	return k.now().UnixNano() / int64(ticketKeyPeriod)
}

// apply sets cfg's ticket keys and keeps them current. Tickets go only to
// TLS 1.3 clients: a TLS 1.2 ticket holds the session's master secret, so
// whoever later read the secret could read the traffic it protected,
// while TLS 1.3 resumption still agrees a fresh key by Diffie-Hellman.
func (k *ticketKeyring) apply(cfg *tls.Config) {
	if k == nil {
		return
	}
	var set atomic.Int64
	set.Store(math.MinInt64)
	rotate := func() {
		// A clock read and two atomic loads per handshake; the mutex only
		// once a period. Taken by every handshake, it made the 10,000
		// handshakes of a reconnecting fleet queue on it: the devices
		// were back 7-19s after the gateway served instead of 2-6s.
		p := k.current()
		if latest := k.period.Load(); p <= latest && set.Load() == latest {
			return
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		// Only forward, whichever handshake read the clock first.
		if p > k.period.Load() {
			k.period.Store(p)
		}
		if latest := k.period.Load(); set.Load() != latest {
			set.Store(latest)
			cfg.SetSessionTicketKeys(k.keys(latest))
		}
	}
	rotate()
	noTickets := cfg.Clone()
	noTickets.SessionTicketsDisabled = true
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		rotate()
		if !offersTLS13(hello) {
			return noTickets, nil
		}
		return nil, nil
	}
}

// extensionSupportedVersions is the TLS extension that offers TLS 1.3; a
// hello without it negotiates TLS 1.2 at most, whatever its version field.
const extensionSupportedVersions = 43

func offersTLS13(hello *tls.ClientHelloInfo) bool {
	return slices.Contains(hello.Extensions, extensionSupportedVersions) &&
		slices.Contains(hello.SupportedVersions, tls.VersionTLS13)
}
