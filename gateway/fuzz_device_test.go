package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// deviceServer is the gateway over mutual TLS with one enrolled Device and
// one command delivered to it, and a client holding that Device's
// certificate: requests pass authentication and reach the validators of
// facts and results.
type deviceServer struct {
	url    string
	client *http.Client
}

func newDeviceServer(tb testing.TB) *deviceServer {
	tb.Helper()
	ca := newTestCA(tb, "test")
	id := testDevice
	cert := deviceCertificate(tb, ca, id)

	now := metav1.Now()
	device := &mdmv1alpha1.Device{
		ObjectMeta: metav1.ObjectMeta{Namespace: id.Namespace, Name: id.Name, UID: id.UID, Generation: 1},
		Spec:       mdmv1alpha1.DeviceSpec{Platform: mdmv1alpha1.PlatformLinux},
		Status:     mdmv1alpha1.DeviceStatus{Phase: mdmv1alpha1.DeviceEnrolled},
	}
	action := &mdmv1alpha1.DeviceAction{
		ObjectMeta: metav1.ObjectMeta{Namespace: id.Namespace, Name: "lock", UID: "cmd-1", CreationTimestamp: now},
		Spec:       mdmv1alpha1.DeviceActionSpec{Action: mdmv1alpha1.ActionLock, Devices: []string{id.Name}},
		Status: mdmv1alpha1.DeviceActionStatus{Phase: mdmv1alpha1.ActionRunning, StartTime: &now, Devices: []mdmv1alpha1.DeviceResult{
			{Name: id.Name, DeviceUID: id.UID, Phase: mdmv1alpha1.CommandDelivered, QueuedAt: &now, DeliveredAt: &now},
		}},
	}
	c := fakeCache().WithObjects(device, action).Build()
	s := New(c, c, ca, nil, logr.Discard(), Options{CertificateLifetime: time.Hour, StatusFlushInterval: time.Minute, Serving: &ServingCertificate{}})
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	go s.results.run(ctx)

	srv := httptest.NewUnstartedServer(s.Handler())
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.Pool()}
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	cl := srv.Client()
	tr := cl.Transport.(*http.Transport)
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	cl.Timeout = 5 * time.Second
	return &deviceServer{url: srv.URL, client: cl}
}

// checkAnswer fails on what a client must never see: a server error, a
// recovered panic, or the gateway's Go types in a message.
func checkAnswer(t *testing.T, name string, status int, body string) {
	t.Helper()
	if status >= 500 || strings.Contains(body, `"internal error"`) {
		t.Fatalf("%s answered %d %s", name, status, body)
	}
	if strings.Contains(body, "agentv1.") || strings.Contains(body, "*v1.") {
		t.Fatalf("%s answered with a Go type name: %s", name, body)
	}
}

// FuzzDevice sends arbitrary bodies to the procedures an enrolled device
// calls, with its valid client certificate, so that they pass
// authentication and reach the validation of facts, results and CSRs.
func FuzzDevice(f *testing.F) {
	srv := newDeviceServer(f)
	procedures := []string{"Poll", "ReportStatus", "CompleteCommand", "RenewCertificate"}
	f.Add(uint8(1), []byte(`{"observedGeneration":"1","facts":{"state":"Disabled","owner":"a@example.com","configurations":[{"name":"wifi","state":"Applied"}]}}`), true)
	f.Add(uint8(1), []byte(`{"facts":{"state":"Stolen","configurations":[{"name":"","state":"Gone"}],"deviceInfo":{"platform":"IOS","osVersion":"\u0000"}}}`), true)
	f.Add(uint8(1), []byte(`{"facts":{"certificates":[{"subject":"CN=x","notAfter":"1970-01-01T00:00:00Z"}]}}`), true)
	f.Add(uint8(2), []byte(`{"commandId":"cmd-1","outcome":"OUTCOME_SUCCEEDED"}`), true)
	f.Add(uint8(2), []byte(`{"commandId":"cmd-1","outcome":"OUTCOME_FAILED","code":1,"steps":[{"name":"a","outcome":"OUTCOME_FAILED"}]}`), true)
	f.Add(uint8(2), []byte(`{"commandId":"cmd-1","outcome":"OUTCOME_FAILED","code":99,"message":"\xff"}`), true)
	f.Add(uint8(0), []byte(`{"configGeneration":"-1"}`), true)
	f.Add(uint8(3), []byte(`{"csrPem":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}`), true)
	f.Add(uint8(1), []byte{0x12, 0x04, 0x32, 0x02, 'x', 'y'}, false)
	f.Fuzz(func(t *testing.T, proc uint8, body []byte, asJSON bool) {
		name := procedures[int(proc)%len(procedures)]
		contentType := "application/proto"
		if asJSON {
			contentType = "application/json"
		}
		resp, err := srv.client.Post(srv.url+"/kubemdm.agent.v1.AgentService/"+name, contentType, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		_, _ = out.ReadFrom(resp.Body)
		checkAnswer(t, name, resp.StatusCode, out.String())
	})
}

// FuzzSubscribeFraming sends Subscribe one Connect envelope built from the
// input (flags, a declared length that may lie, a payload) followed by
// arbitrary trailing bytes, as a device with a valid certificate. The
// stream must end in a clean error or run; it is cut after its first
// answer, since a healthy stream never ends by itself.
func FuzzSubscribeFraming(f *testing.F) {
	srv := newDeviceServer(f)
	f.Add(uint8(0), uint32(2), []byte(`{}`), []byte{})
	f.Add(uint8(0), uint32(40), []byte(`{"configGeneration":"5"}`), []byte{})
	f.Add(uint8(1), uint32(2), []byte(`{}`), []byte{})
	f.Add(uint8(2), uint32(0), []byte{}, []byte(`{}`))
	f.Add(uint8(0), uint32(0xffffffff), []byte(`{}`), []byte{0, 0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, flags uint8, length uint32, payload, trailing []byte) {
		var frame bytes.Buffer
		frame.WriteByte(flags)
		_ = binary.Write(&frame, binary.BigEndian, length)
		frame.Write(payload)
		frame.Write(trailing)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.url+"/kubemdm.agent.v1.AgentService/Subscribe", &frame)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/connect+json")
		resp, err := srv.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		// Read the first frame of the answer: a message of a live stream,
		// or its end with an error.
		head := make([]byte, 5)
		if _, err := readFull(resp.Body, head); err != nil {
			checkAnswer(t, "Subscribe", resp.StatusCode, "")
			return
		}
		n := binary.BigEndian.Uint32(head[1:])
		if n > 1<<20 {
			t.Fatalf("Subscribe answered a frame of %d bytes", n)
		}
		msg := make([]byte, n)
		if _, err := readFull(resp.Body, msg); err != nil {
			t.Fatalf("Subscribe answered a truncated frame: %v", err)
		}
		checkAnswer(t, "Subscribe", resp.StatusCode, string(msg))
	})
}

func readFull(r interface{ Read([]byte) (int, error) }, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// The fuzz targets above are only worth their time if their requests pass
// authentication: these answers come from the validators behind it.
func TestDeviceServerReachesTheValidators(t *testing.T) {
	srv := newDeviceServer(t)
	for _, tc := range []struct {
		procedure, body string
		status          int
		says            string
	}{
		{"ReportStatus", `{"facts":{"state":"Active"}}`, http.StatusOK, ""},
		{"ReportStatus", `{"facts":{"state":"Stolen"}}`, http.StatusBadRequest, `facts.state \"Stolen\" must be Active or Disabled`},
		{"ReportStatus", `{"facts":{"configurations":[{"name":"","state":"Applied"}]}}`, http.StatusBadRequest, "facts.configurations[0]"},
		{"CompleteCommand", `{"commandId":"cmd-1","outcome":"OUTCOME_FAILED","code":99}`, http.StatusBadRequest, "not a google.rpc.Code"},
		{"CompleteCommand", `{"commandId":"cmd-1","outcome":"OUTCOME_SUCCEEDED"}`, http.StatusOK, ""},
		{"CompleteCommand", `{"commandId":"cmd-1","outcome":"OUTCOME_FAILED","code":13}`, http.StatusBadRequest, "already Succeeded"},
		{"Poll", `{}`, http.StatusOK, ""},
	} {
		resp, err := srv.client.Post(srv.url+"/kubemdm.agent.v1.AgentService/"+tc.procedure, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		_, _ = out.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(out.String(), tc.says) {
			t.Errorf("%s %s: %d %s; want %d saying %q", tc.procedure, tc.body, resp.StatusCode, out.String(), tc.status, tc.says)
		}
	}
}
