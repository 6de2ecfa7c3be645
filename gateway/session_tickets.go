package gateway

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/kubemdm/kubemdm/internal/pki"
)

// ticketKeyring gives every gateway replica, and every restart of one, the
// same TLS session ticket keys, derived from the device CA's private key,
// which they all hold. When a gateway restarts, its whole fleet reconnects
// at once; with tickets that outlive the process, an agent resumes its
// session instead of a full handshake, and neither end signs or verifies a
// certificate chain: the costliest part of a reconnect storm, on the
// gateway and on the devices. Go's own keys are random per process, so no
// ticket survived a restart or reached another replica.
//
// A ticket carries the client certificate it was issued for. The server
// still checks that certificate's chain against the device CA and its
// expiry on resumption, and every call still authenticates its Device
// from the cache, so a resumed session is no more trusted than a new one.
type ticketKeyring struct {
	// secret is the device CA's private key, DER; keys are derived from it
	// and the period.
	secret []byte
	now    func() time.Time
}

// ticketKeyPeriod is how long a ticket key issues tickets; a ticket is
// accepted for one more period, so between one and two periods in all. A
// device whose stream outlasted that makes a full handshake when it next
// connects, as every device did before.
const ticketKeyPeriod = 24 * time.Hour

// newTicketKeyring derives ticket keys from ca's key, or returns nil,
// leaving Go's keys, random per process, when that key cannot be read, as
// with a key held in a hardware module.
func newTicketKeyring(ca *pki.CA, now func() time.Time) (*ticketKeyring, error) {
	if ca == nil || ca.Key == nil {
		return nil, nil
	}
	secret, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("reading the device CA key for session tickets: %w", err)
	}
	return &ticketKeyring{secret: secret, now: now}, nil
}

// keys are the keys of period p: its own first, which issues tickets, and
// the one before, which still opens them.
func (k *ticketKeyring) keys(p int64) [][32]byte {
	return [][32]byte{k.derive(p), k.derive(p - 1)}
}

func (k *ticketKeyring) derive(p int64) [32]byte {
	info := binary.BigEndian.AppendUint64([]byte("kubemdm gateway session ticket key "), uint64(p))
	key, err := hkdf.Key(sha256.New, k.secret, nil, string(info), 32)
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
// whoever later got the CA key could read the traffic it protected, while
// TLS 1.3 resumption still agrees a fresh key by Diffie-Hellman.
func (k *ticketKeyring) apply(cfg *tls.Config) {
	if k == nil {
		return
	}
	var period atomic.Int64
	p := k.current()
	period.Store(p)
	cfg.SetSessionTicketKeys(k.keys(p))
	noTickets := cfg.Clone()
	noTickets.SessionTicketsDisabled = true
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		// A clock read per handshake; the keys change once a period. A
		// handshake racing the change may issue one more ticket with the
		// last period's key, which opens for a period yet.
		if p := k.current(); period.Swap(p) != p {
			cfg.SetSessionTicketKeys(k.keys(p))
		}
		if !slices.Contains(hello.SupportedVersions, tls.VersionTLS13) {
			return noTickets, nil
		}
		return nil, nil
	}
}
