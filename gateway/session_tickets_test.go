package gateway

import (
	"crypto/rand"
	"crypto/tls"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubemdm/kubemdm/internal/pki"
)

// ticketGateway is the agent listener of a gateway just started: a new
// Server on the device CA, whose clock reads a given time.
type ticketGateway struct {
	addr    string
	counted *prometheus.CounterVec
}

// startTicketGateway serves TLS as the gateway does, with a serving
// certificate of its own from gatewayCA, from a new Server on deviceCA and
// the ticket secret whose clock is now.
func startTicketGateway(t testing.TB, gatewayCA, deviceCA *pki.CA, secret []byte, now func() time.Time) ticketGateway {
	t.Helper()
	return serveTickets(t, newTicketServer(t, gatewayCA, deviceCA, secret, now))
}

// newTicketServer is a Server on deviceCA with a serving certificate of its
// own from gatewayCA and the ticket secret, whose clock is now.
func newTicketServer(t testing.TB, gatewayCA, deviceCA *pki.CA, secret []byte, now func() time.Time) *Server {
	t.Helper()
	certPEM, keyPEM, err := gatewayCA.SignServing([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving := &ServingCertificate{}
	if err := serving.set(certPEM, keyPEM, gatewayCA.CertPEM); err != nil {
		t.Fatal(err)
	}
	s := New(nil, nil, deviceCA, nil, logr.Discard(), Options{StatusFlushInterval: time.Minute, Serving: serving, TicketSecret: secret})
	s.tickets.now = now
	return s
}

// serveTickets serves s's TLS config and answers each connection with a
// byte, so that its client reads the session ticket sent before it: 1 when
// the connection's verified chain names the device, 0 when not.
func serveTickets(t testing.TB, s *Server) ticketGateway {
	t.Helper()
	counted := newHandshakeCounter()
	l := newHandshakeListener(listen(t), s.TLSConfig(), 5*time.Second, counted)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if _, err := c.Write([]byte{namesTheDevice(c)}); err != nil {
				t.Logf("writing: %v", err)
			}
			_ = c.Close()
		}
	}()
	return ticketGateway{addr: l.Addr().String(), counted: counted}
}

// namesTheDevice is 1 when c's verified chain names the device of
// deviceCertificate, read as the gateway's withIdentity reads it, which a
// resumed session restores from its ticket.
func namesTheDevice(c net.Conn) byte {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return 0
	}
	chains := tc.ConnectionState().VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return 0
	}
	if id, err := pki.IdentityFromCertificate(chains[0][0]); err != nil || id.Name != "phone" {
		return 0
	}
	return 1
}

// TestSessionTicketsOutliveARestart: an agent reconnecting to a restarted
// gateway, or to another replica, resumes its TLS session, and is counted
// so, until the period after the one its ticket was issued in ends; not
// at a gateway of another secret, nor over TLS 1.2.
func TestSessionTicketsOutliveARestart(t *testing.T) {
	gatewayCA, deviceCA := newTestCA(t, "gateway"), newTestCA(t, "devices")
	secret, otherSecret := randomSecret(t), randomSecret(t)
	cert := deviceCertificate(t, deviceCA, testDevice)
	agent := func(maxVersion uint16) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: gatewayCA.Pool(), ServerName: "127.0.0.1", MaxVersion: maxVersion,
			ClientSessionCache: tls.NewLRUClientSessionCache(1)}
	}
	connect := func(t *testing.T, conf *tls.Config, g ticketGateway) bool {
		t.Helper()
		c, err := tls.Dial("tcp", g.addr, conf)
		if err != nil {
			t.Fatalf("dialling: %v", err)
		}
		defer func() { _ = c.Close() }()
		// The byte may come with the end of the connection, as over TLS 1.2.
		answer := make([]byte, 1)
		if n, err := c.Read(answer); n != 1 {
			t.Fatalf("reading: %v (handshakes counted %v)", err, counts(g.counted))
		}
		if answer[0] != 1 {
			t.Errorf("the gateway found no device in the verified chain (resumed: %v)", c.ConnectionState().DidResume)
		}
		return c.ConnectionState().DidResume
	}
	start := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(t time.Time) func() time.Time { return func() time.Time { return t } }
	for _, tc := range []struct {
		name       string
		maxVersion uint16
		// after is how much later the restarted gateway's clock reads.
		after       time.Duration
		otherSecret bool
		resumed     bool
	}{
		{name: "restarted a minute later", after: time.Minute, resumed: true},
		{name: "restarted the next day, in the ticket's second period", after: 25 * time.Hour, resumed: true},
		{name: "restarted after the ticket's second period", after: 49 * time.Hour},
		{name: "a replica whose clock is in the period before", after: -13 * time.Hour, resumed: true},
		{name: "another secret", otherSecret: true, after: time.Minute},
		{name: "TLS 1.2", maxVersion: tls.VersionTLS12, after: time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := agent(tc.maxVersion)
			first := startTicketGateway(t, gatewayCA, deviceCA, secret, at(start))
			if connect(t, conf, first) {
				t.Fatal("the first connection resumed a session")
			}
			restartedWith := secret
			if tc.otherSecret {
				restartedWith = otherSecret
			}
			restarted := startTicketGateway(t, gatewayCA, deviceCA, restartedWith, at(start.Add(tc.after)))
			if got := connect(t, conf, restarted); got != tc.resumed {
				t.Errorf("resumed: %v, want %v", got, tc.resumed)
			}
			// Counted once handed over, which the byte may beat.
			want := map[bool]string{true: "resumed", false: "ok"}[tc.resumed]
			for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(restarted.counted.WithLabelValues(want)) != 1; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("handshakes counted %v, want 1 %s", counts(restarted.counted), want)
				}
			}
		})
	}

	// A gateway running from one period into the next but one stops
	// opening its old tickets and issues tickets under the new key, which
	// a gateway started then opens.
	t.Run("running into a new period", func(t *testing.T) {
		var clock atomic.Int64
		clock.Store(start.UnixNano())
		running := startTicketGateway(t, gatewayCA, deviceCA, secret, func() time.Time { return time.Unix(0, clock.Load()) })
		conf := agent(0)
		if connect(t, conf, running) {
			t.Fatal("the first connection resumed a session")
		}
		clock.Store(start.Add(49 * time.Hour).UnixNano())
		if connect(t, conf, running) {
			t.Error("a ticket of two periods before resumed")
		}
		if !connect(t, conf, startTicketGateway(t, gatewayCA, deviceCA, secret, at(start.Add(49*time.Hour)))) {
			t.Error("the ticket issued in the new period did not resume at a gateway started then")
		}
	})

	// A handshake that read the clock before another moved the keys on
	// does not move them back: the keys of two periods before stay closed.
	t.Run("a clock read late", func(t *testing.T) {
		var clock atomic.Int64
		clock.Store(start.Add(49 * time.Hour).UnixNano())
		running := startTicketGateway(t, gatewayCA, deviceCA, secret, func() time.Time { return time.Unix(0, clock.Load()) })
		if connect(t, agent(0), running) {
			t.Fatal("the first connection resumed a session")
		}
		old := agent(0)
		if connect(t, old, startTicketGateway(t, gatewayCA, deviceCA, secret, at(start))) {
			t.Fatal("the first connection resumed a session")
		}
		clock.Store(start.UnixNano())
		if connect(t, old, running) {
			t.Error("a clock read late moved the keys back two periods")
		}
	})

	// The gateway makes more than one TLS config from its keyring (the
	// listener's and the HTTP server's): one made while the clock reads
	// behind the period another config moved the keyring to issues under
	// the later period's key, which a gateway started in it opens.
	t.Run("a second config made with the clock behind", func(t *testing.T) {
		var clock atomic.Int64
		clock.Store(start.Add(49 * time.Hour).UnixNano())
		s := newTicketServer(t, gatewayCA, deviceCA, secret, func() time.Time { return time.Unix(0, clock.Load()) })
		_ = s.TLSConfig()
		clock.Store(start.UnixNano())
		second := serveTickets(t, s)
		conf := agent(0)
		if connect(t, conf, second) {
			t.Fatal("the first connection resumed a session")
		}
		if !connect(t, conf, startTicketGateway(t, gatewayCA, deviceCA, secret, at(start.Add(49*time.Hour)))) {
			t.Error("the second config issued its ticket under a key two periods old")
		}
	})
}

// TestTicketKeysAreTheSecretsAndThePeriods: gateways of another secret
// share no key; a period opens the tickets of the one before and the one
// after, and issues its own with a key of its own.
func TestTicketKeysAreTheSecretsAndThePeriods(t *testing.T) {
	keyring := func(secret []byte) *ticketKeyring {
		k, err := newTicketKeyring(secret, time.Now)
		if err != nil || k == nil {
			t.Fatalf("no keyring: %v", err)
		}
		return k
	}
	secret := randomSecret(t)
	mine, again, other := keyring(secret), keyring(secret), keyring(randomSecret(t))
	const p = 20428
	if mine.keys(p)[0] != again.keys(p)[0] {
		t.Error("two keyrings of one secret derive different keys")
	}
	if got := mine.keys(p); got[1] != mine.keys(p - 1)[0] || got[2] != mine.keys(p + 1)[0] {
		t.Error("a period does not open the tickets of the periods beside it")
	}
	for _, k := range other.keys(p) {
		if slices.Contains(mine.keys(p), k) {
			t.Error("two secrets share a ticket key")
		}
	}
	if mine.keys(p)[0] == mine.keys(p + 1)[0] {
		t.Error("two periods share a ticket key")
	}
	if k, err := newTicketKeyring(secret[:16], time.Now); err == nil || k != nil {
		t.Errorf("a 16-byte secret gave a keyring (error %v)", err)
	}
}

// TestOffersTLS13: only a hello with the supported_versions extension
// negotiates TLS 1.3, whatever versions Go lists for it.
func TestOffersTLS13(t *testing.T) {
	for _, tc := range []struct {
		name       string
		extensions []uint16
		versions   []uint16
		want       bool
	}{
		{"TLS 1.3 client", []uint16{0, 10, 43, 51}, []uint16{tls.VersionTLS13, tls.VersionTLS12}, true},
		{"TLS 1.2 client", []uint16{0, 10, 35}, []uint16{tls.VersionTLS12, tls.VersionTLS11}, false},
		{"version field past 1.2, no extension", []uint16{0, 10}, []uint16{tls.VersionTLS13, tls.VersionTLS12}, false},
		{"extension without 1.3", []uint16{0, 43}, []uint16{tls.VersionTLS12}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := offersTLS13(&tls.ClientHelloInfo{Extensions: tc.extensions, SupportedVersions: tc.versions}); got != tc.want {
				t.Errorf("offersTLS13: %v, want %v", got, tc.want)
			}
		})
	}
}

// randomSecret is a ticket secret as EnsureTicketSecret makes one.
func randomSecret(t testing.TB) []byte {
	t.Helper()
	secret := make([]byte, minTicketSecret)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	return secret
}

func counts(c *prometheus.CounterVec) map[string]float64 {
	out := map[string]float64{}
	for _, r := range handshakeResults {
		out[r] = testutil.ToFloat64(c.WithLabelValues(r))
	}
	return out
}
