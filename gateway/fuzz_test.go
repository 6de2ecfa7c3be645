package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/index"
)

// FuzzHandler throws arbitrary bodies at every procedure, in JSON and in
// binary protobuf, without a client certificate. Whatever arrives, the
// gateway must answer with a client error, never panic or fail internally.
// The cache is a fake here: the target is the decoding and validation that
// run before any lookup.
func FuzzHandler(f *testing.F) {
	srv := newTestServer(f)
	defer srv.Close()

	procedures := []string{"Enroll", "Subscribe", "Poll", "ReportStatus", "CompleteCommand", "RenewCertificate"}
	f.Add(uint8(0), []byte(`{"token":"kmdm_et_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","csrPem":"x","deviceInfo":{"platform":"Linux"}}`), true)
	f.Add(uint8(0), []byte(`{"token":1}`), true)
	f.Add(uint8(4), []byte(`{"commandId":"x","outcome":"OUTCOME_SUCCEEDED"}`), true)
	f.Add(uint8(0), []byte{0x0a, 0x03, 'a', 'b', 'c', 0x12, 0xff}, false)
	f.Add(uint8(3), []byte(strings.Repeat("[", 10000)), true)
	f.Fuzz(func(t *testing.T, proc uint8, body []byte, asJSON bool) {
		name := procedures[int(proc)%len(procedures)]
		contentType := "application/proto"
		if asJSON {
			contentType = "application/json"
		}
		if name == "Subscribe" {
			// Server streams use the Connect streaming content type; an
			// envelope-less body must be refused all the same.
			contentType = "application/connect+" + strings.TrimPrefix(contentType, "application/")
		}
		resp, err := http.Post(srv.URL+"/kubemdm.agent.v1.AgentService/"+name, contentType, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		_, _ = out.ReadFrom(resp.Body)
		// A unary error is an HTTP status; a stream's error travels in its
		// end message, where Connect's own framing errors read "protocol
		// error". Only a panic the handler recovered from says "internal error".
		if resp.StatusCode >= 500 || strings.Contains(out.String(), `"internal error"`) {
			t.Fatalf("%s answered %d %s", name, resp.StatusCode, out.String())
		}
		// An error explains the request in the protocol's terms, never
		// with the gateway's Go types.
		if strings.Contains(out.String(), "agentv1.") || strings.Contains(out.String(), "*v1.") {
			t.Fatalf("%s answered with a Go type name: %s", name, out.String())
		}
	})
}

// newTestServer serves the gateway's handler over plain HTTP, with a fake
// cache: enough for the decoding and validation that run before any lookup.
func newTestServer(tb testing.TB) *httptest.Server {
	ca := newTestCA(tb, "test")
	c := fakeCache().Build()
	s := New(c, c, ca, nil, logr.Discard(), Options{CertificateLifetime: time.Hour, StatusFlushInterval: time.Minute, Serving: &ServingCertificate{}})
	return httptest.NewServer(s.Handler())
}

// fakeCache is a fake client with the gateway's cache indexes, for the
// targets that exercise decoding and validation.
func fakeCache() *fake.ClientBuilder {
	scheme := runtime.NewScheme()
	_ = mdmv1alpha1.AddToScheme(scheme)
	return fake.NewClientBuilder().WithScheme(scheme).
		WithStatusSubresource(&mdmv1alpha1.Device{}, &mdmv1alpha1.DeviceAction{}).
		WithIndex(&mdmv1alpha1.EnrollmentToken{}, IndexTokenHash, func(client.Object) []string { return nil }).
		WithIndex(&mdmv1alpha1.Device{}, IndexSerialNumber, func(client.Object) []string { return nil }).
		WithIndex(&mdmv1alpha1.DeviceAction{}, index.OpenCommands, index.OpenCommandDevices).
		WithIndex(&mdmv1alpha1.DeviceAction{}, index.ActionUID, func(o client.Object) []string { return []string{string(o.GetUID())} })
}
