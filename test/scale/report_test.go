package scale

import (
	"math"
	"testing"
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
