package main

import (
	"math"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// TestLimitClientRate: a rate is one limiter shared by the clients of
// every resource type made from the config; no rate, no limiter; a rate
// or burst that means nothing, or something else than it says, is refused
// with the flag's name.
func TestLimitClientRate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		qps       float64
		burst     int
		wantQPS   float32
		wantBurst int
		wantErr   string
	}{
		{name: "no client-side limit", qps: -1, wantQPS: -1},
		{name: "a rate and a burst", qps: 50, burst: 80, wantQPS: 50, wantBurst: 80},
		{name: "a rate, burst of two seconds", qps: 50, wantQPS: 50, wantBurst: 100},
		{name: "a slow rate still lets one through", qps: 0.2, wantQPS: 0.2, wantBurst: 1},
		{name: "zero", qps: 0, wantErr: "--kube-api-qps 0"},
		{name: "too small to be a rate", qps: 1e-50, wantErr: "--kube-api-qps 1e-50"},
		{name: "not a number", qps: math.NaN(), wantErr: "--kube-api-qps"},
		{name: "infinite", qps: math.Inf(1), wantErr: "--kube-api-qps"},
		{name: "negative burst", qps: 10, burst: -1, wantErr: "--kube-api-burst"},
		{name: "a burst without a rate", qps: -1, burst: 10, wantErr: "--kube-api-burst 10 needs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &rest.Config{Host: "https://127.0.0.1:6443"}
			err := limitClientRate(cfg, tc.qps, tc.burst)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.QPS != tc.wantQPS || cfg.Burst != tc.wantBurst {
				t.Errorf("QPS %v burst %d, want %v and %d", cfg.QPS, cfg.Burst, tc.wantQPS, tc.wantBurst)
			}
			// Two resource types' clients, as controller-runtime makes them.
			pods, secrets := restClient(t, cfg, corev1.SchemeGroupVersion), restClient(t, cfg, schema.GroupVersion{Group: "coordination.k8s.io", Version: "v1"})
			if tc.wantQPS < 0 {
				if pods.GetRateLimiter() != nil {
					t.Errorf("a client-side limiter of %v per second, want none", pods.GetRateLimiter().QPS())
				}
				return
			}
			if pods.GetRateLimiter() == nil || pods.GetRateLimiter().QPS() != tc.wantQPS {
				t.Fatalf("limiter %v, want %v per second", pods.GetRateLimiter(), tc.wantQPS)
			}
			if pods.GetRateLimiter() != secrets.GetRateLimiter() {
				t.Error("two resource types' clients have a limiter each: the rate would cap each, not the manager")
			}
		})
	}
}

func restClient(t *testing.T, cfg *rest.Config, gv schema.GroupVersion) *rest.RESTClient {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.GroupVersion = &gv
	cfg.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	c, err := rest.RESTClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
