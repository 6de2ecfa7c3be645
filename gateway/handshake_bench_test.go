package gateway

import (
	"crypto/tls"
	"testing"
	"time"
)

// BenchmarkAgentHandshake times an agent's mutual-TLS handshake with the
// gateway, both ends in this process: a full one, as every reconnect was
// before ADR 16, and one that resumes a session, and reports the ratio of
// the two from the same run.
func BenchmarkAgentHandshake(b *testing.B) {
	gatewayCA, deviceCA := newTestCA(b, "gateway"), newTestCA(b, "devices")
	g := startTicketGateway(b, gatewayCA, deviceCA, randomSecret(b), time.Now)
	full := &tls.Config{Certificates: []tls.Certificate{deviceCertificate(b, deviceCA, testDevice)}, RootCAs: gatewayCA.Pool(), ServerName: "127.0.0.1"}
	resuming := full.Clone()
	resuming.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	connect := func(conf *tls.Config) bool {
		c, err := tls.Dial("tcp", g.addr, conf)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		// The answer's byte comes after the session ticket.
		if n, _ := c.Read(make([]byte, 1)); n != 1 {
			b.Fatal("no answer")
		}
		return c.ConnectionState().DidResume
	}
	if connect(resuming) {
		b.Fatal("the first connection resumed a session")
	}
	// The two alternate, so that the machine's load weighs on both alike.
	var fullTime, resumedTime time.Duration
	timed := func(conf *tls.Config, resumed bool) time.Duration {
		start := time.Now()
		if connect(conf) != resumed {
			b.Fatalf("resumed is %v, want %v", !resumed, resumed)
		}
		return time.Since(start)
	}
	b.ResetTimer()
	for range b.N {
		fullTime += timed(full, false)
		resumedTime += timed(resuming, true)
	}
	b.ReportMetric(float64(fullTime.Microseconds())/float64(b.N), "µs/full")
	b.ReportMetric(float64(resumedTime.Microseconds())/float64(b.N), "µs/resumed")
	b.ReportMetric(float64(resumedTime)/float64(fullTime), "resumed/full")
}
