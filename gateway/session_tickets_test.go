package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
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
// certificate of its own from gatewayCA, from a new Server on deviceCA
// whose clock reads now, and answers each connection with a byte, so that
// its client reads the session ticket sent before it.
func startTicketGateway(t testing.TB, gatewayCA, deviceCA *pki.CA, now func() time.Time) ticketGateway {
	t.Helper()
	certPEM, keyPEM, err := gatewayCA.SignServing([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving := &ServingCertificate{}
	if err := serving.set(certPEM, keyPEM, gatewayCA.CertPEM); err != nil {
		t.Fatal(err)
	}
	s := New(nil, nil, deviceCA, nil, logr.Discard(), Options{StatusFlushInterval: time.Minute, Serving: serving})
	s.tickets.now = now
	counted := newHandshakeCounter()
	l := newHandshakeListener(listen(t), s.TLSConfig(), 5*time.Second, counted)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if _, err := c.Write([]byte{1}); err != nil {
				t.Logf("writing: %v", err)
			}
			_ = c.Close()
		}
	}()
	return ticketGateway{addr: l.Addr().String(), counted: counted}
}

// deviceCertificate is a certificate deviceCA issued to a device.
func deviceCertificate(t testing.TB, deviceCA *pki.CA) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	_, leaf, err := deviceCA.SignDevice(csr, pki.DeviceIdentity{Namespace: "fleet", Name: "phone", UID: "0c2f4a3e-0000-4000-8000-000000000002"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
}

// TestSessionTicketsOutliveARestart: an agent reconnecting to a restarted
// gateway, or to another replica, resumes its TLS session, and is counted
// so, until the period after the one its ticket was issued in ends; not
// over TLS 1.2.
func TestSessionTicketsOutliveARestart(t *testing.T) {
	gatewayCA, deviceCA := newTestCA(t, "gateway"), newTestCA(t, "devices")
	cert := deviceCertificate(t, deviceCA)
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
		if n, err := c.Read(make([]byte, 1)); n != 1 {
			t.Fatalf("reading: %v (handshakes counted %v)", err, counts(g.counted))
		}
		return c.ConnectionState().DidResume
	}
	start := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(t time.Time) func() time.Time { return func() time.Time { return t } }
	for _, tc := range []struct {
		name       string
		maxVersion uint16
		// after is how much later the restarted gateway's clock reads.
		after   time.Duration
		resumed bool
	}{
		{name: "restarted a minute later", after: time.Minute, resumed: true},
		{name: "restarted the next day, in the ticket's second period", after: 25 * time.Hour, resumed: true},
		{name: "restarted after the ticket's second period", after: 49 * time.Hour},
		{name: "TLS 1.2", maxVersion: tls.VersionTLS12, after: time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := agent(tc.maxVersion)
			first := startTicketGateway(t, gatewayCA, deviceCA, at(start))
			if connect(t, conf, first) {
				t.Fatal("the first connection resumed a session")
			}
			restarted := startTicketGateway(t, gatewayCA, deviceCA, at(start.Add(tc.after)))
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
		running := startTicketGateway(t, gatewayCA, deviceCA, func() time.Time { return time.Unix(0, clock.Load()) })
		conf := agent(0)
		if connect(t, conf, running) {
			t.Fatal("the first connection resumed a session")
		}
		clock.Store(start.Add(49 * time.Hour).UnixNano())
		if connect(t, conf, running) {
			t.Error("a ticket of two periods before resumed")
		}
		if !connect(t, conf, startTicketGateway(t, gatewayCA, deviceCA, at(start.Add(49*time.Hour)))) {
			t.Error("the ticket issued in the new period did not resume at a gateway started then")
		}
	})
}

// TestTicketKeysAreTheCAsAndThePeriods: gateways of another device CA
// share no key, and a period's second key is the one before's first.
func TestTicketKeysAreTheCAsAndThePeriods(t *testing.T) {
	keyring := func(ca *pki.CA) *ticketKeyring {
		k, err := newTicketKeyring(ca, time.Now)
		if err != nil || k == nil {
			t.Fatalf("no keyring: %v", err)
		}
		return k
	}
	ca := newTestCA(t, "devices")
	mine, again, other := keyring(ca), keyring(ca), keyring(newTestCA(t, "devices"))
	const p = 20428
	if mine.keys(p)[0] != again.keys(p)[0] {
		t.Error("two keyrings of one CA derive different keys")
	}
	if mine.keys(p)[1] != mine.keys(p - 1)[0] {
		t.Error("a period does not open the tickets of the period before")
	}
	for _, k := range other.keys(p) {
		if k == mine.keys(p)[0] || k == mine.keys(p)[1] {
			t.Error("two device CAs share a ticket key")
		}
	}
	if mine.keys(p)[0] == mine.keys(p + 1)[0] {
		t.Error("two periods share a ticket key")
	}
}

func counts(c *prometheus.CounterVec) map[string]float64 {
	out := map[string]float64{}
	for _, r := range handshakeResults {
		out[r] = testutil.ToFloat64(c.WithLabelValues(r))
	}
	return out
}
