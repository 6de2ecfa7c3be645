package scale

import (
	"math"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func TestParseWrites(t *testing.T) {
	raw := []byte(`# HELP apiserver_request_total Counter
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="mdm.kubemdm.io",resource="devices",scope="resource",subresource="",verb="POST",version="v1alpha1"} 7
apiserver_request_total{code="409",component="apiserver",dry_run="",group="mdm.kubemdm.io",resource="devices",scope="resource",subresource="status",verb="APPLY",version="v1alpha1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="mdm.kubemdm.io",resource="devices",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="mdm.kubemdm.io",resource="devices",scope="namespace",subresource="",verb="LIST",version="v1alpha1"} 100
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 4
apiserver_request_duration_seconds_count{verb="POST"} 9
`)
	w, err := parseWrites(raw)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]float64{"devices": 7, "devices/status": 3, "devices/status(409)": 2, "leases": 4} {
		if w[key] != want {
			t.Errorf("%s: %v, want %v (all: %s)", key, w[key], want, w)
		}
	}
	if got := w.Total(); got != 12 {
		t.Errorf("Total leaves out leases: %v, want 12", got)
	}
	if got := w.Of("devices"); got != 12 {
		t.Errorf("Of(devices) takes subresources: %v, want 12", got)
	}
	before := Writes{"devices": 2}
	own := Writes{"devices": 5}
	if got := w.Sub(before).Less(own); got["devices"] != 0 || got["devices/status"] != 3 {
		t.Errorf("Sub then Less: %s", got)
	}
}

func TestTarget(t *testing.T) {
	for _, tc := range []struct {
		name         string
		target       Target
		margin       float64
		met, holding bool
	}{
		{"at most, reached", Target{Value: 3, Limit: 3}, 1, true, true},
		{"at most, missed", Target{Value: 3.5, Limit: 3}, 1, false, false},
		{"a count gets no margin", Target{Value: 3.5, Limit: 3}, 2, false, false},
		{"a noisy figure gets the margin", Target{Value: 5, Limit: 3, Noisy: true}, 2, true, true},
		{"two decimals: one write over a thousand devices", Target{Value: 1.001, Limit: 1}, 1, true, true},
		{"at least, missed but held", Target{Value: 0.04, Limit: 0.25, AtLeast: true, Holding: 0.03}, 1, false, true},
		{"at least, worse than held", Target{Value: 0.02, Limit: 0.25, AtLeast: true, Holding: 0.03}, 1, false, false},
		{"no heartbeat is infinitely many writes", Target{Value: math.Inf(1), Limit: 5}, 2, false, false},
		{"not judged", Target{Value: 56, Limit: 16, Noisy: true, NotJudged: "fewer than 1000 Devices"}, 1, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.target.Met(tc.margin); got != tc.met {
				t.Errorf("Met: %v, want %v", got, tc.met)
			}
			if got := tc.target.Holds(tc.margin); got != tc.holding {
				t.Errorf("Holds: %v, want %v", got, tc.holding)
			}
		})
	}
}

func TestWriterTally(t *testing.T) {
	at := func(sec int64) metav1.Time { return metav1.Unix(sec, 0) }
	entry := func(manager, sub string, sec int64, fields string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationApply, Subresource: sub,
			Time: ptr.To(at(sec)), FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}}
	}
	device := func(rv string, entries ...metav1.ManagedFieldsEntry) *mdmv1alpha1.Device {
		return &mdmv1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: "d", ResourceVersion: rv, ManagedFields: entries,
			CreationTimestamp: at(10)}}
	}
	created := device("1", entry("enroll", "", 10, `{"f:spec":{}}`))
	opened := device("2", entry("enroll", "", 10, `{"f:spec":{}}`), entry("gateway", "status", 11, `{"f:status":{}}`))
	settled := device("3", entry("enroll", "", 10, `{"f:spec":{}}`), entry("gateway", "status", 11, `{"f:status":{}}`),
		entry("manager", "status", 11, `{"f:status":{"f:phase":{}}}`))
	again := device("4", settled.ManagedFields...)
	w := newWriterTally()
	w.added(created)
	w.updated(created, opened)
	w.updated(opened, settled)
	w.updated(settled, settled) // a resync
	w.updated(settled, again)   // moved nothing: within the second
	other := device("1", entry("enroll", "", 10, `{"f:spec":{}}`))
	other.Name = "e"
	w.added(other)
	want := "1 writes on 1 Devices, 4 writes on 1 Devices; by field manager: enroll/=2 gateway/status=1 manager/status=1;" +
		" the Devices written more, in order: [enroll/, gateway/status, manager/status, ?] on 1;" +
		" gateway/status first wrote 1s after the create at the median, 1s at p90, 1s at most;" +
		" manager/status first wrote 1s after the create at the median, 1s at p90, 1s at most;" +
		" gateway/status on the Devices written more first wrote 1s after the create at the median, 1s at p90, 1s at most;" +
		" manager/status on the Devices written more first wrote 1s after the create at the median, 1s at p90, 1s at most;" +
		" 1 not attributable (a manager's second write within the second, no field newly owned)"
	if got := w.String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestParseHandshakes(t *testing.T) {
	raw := []byte(`# HELP kubemdm_gateway_tls_handshakes_total TLS handshakes
# TYPE kubemdm_gateway_tls_handshakes_total counter
kubemdm_gateway_tls_handshakes_total{result="closed"} 0
kubemdm_gateway_tls_handshakes_total{result="ok"} 12
kubemdm_gateway_tls_handshakes_total{result="resumed"} 288
kubemdm_gateway_tls_handshakes_totally{result="ok"} 5
`)
	hs, err := parseHandshakes(raw)
	if err != nil {
		t.Fatal(err)
	}
	if hs["ok"] != 12 || hs["resumed"] != 288 || len(hs) != 3 {
		t.Errorf("parsed %v", hs)
	}
	if got := resumedShare(hs); got != 0.96 {
		t.Errorf("resumed share %v, want 0.96", got)
	}
	if _, err := parseHandshakes([]byte("go_goroutines 7\n")); err == nil {
		t.Error("metrics without the handshake counter parsed")
	}
	if _, err := parseHandshakes([]byte(`kubemdm_gateway_tls_handshakes_total{result="ok"} many` + "\n")); err == nil {
		t.Error("a count that is no number parsed")
	}
}

// TestLostTransitions: each wrong showing counts (a switched-off device
// not shown disconnected, a device that came back seen disconnected, one
// not connected throughout), and none cancels another.
func TestLostTransitions(t *testing.T) {
	for _, tc := range []struct {
		name                                        string
		devices, off, shownOff, wronglyOff, shownOn int
		want                                        int
	}{
		{name: "all shown right", devices: 300, off: 30, shownOff: 30, shownOn: 270},
		{name: "a switched-off device still shown connected", devices: 300, off: 30, shownOff: 29, shownOn: 270, want: 1},
		{name: "a device that came back seen disconnected", devices: 300, off: 30, shownOff: 30, wronglyOff: 1, shownOn: 269, want: 1},
		{name: "a device that came back, disconnected too briefly to be seen", devices: 300, off: 30, shownOff: 30, shownOn: 269, want: 1},
		{name: "both ways at once", devices: 300, off: 30, shownOff: 29, wronglyOff: 1, shownOn: 268, want: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Results{}
			r.Presence.Devices, r.Presence.Off = tc.devices, tc.off
			r.Presence.ShownOff, r.Presence.WronglyOff, r.Presence.ShownOn = tc.shownOff, tc.wronglyOff, tc.shownOn
			if got := r.lostTransitions(); got != tc.want {
				t.Errorf("%d lost, want %d", got, tc.want)
			}
		})
	}
}
