package main

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

func TestLimitClientRate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		qps       float32
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
		{name: "negative burst", qps: 10, burst: -1, wantErr: "--kube-api-burst"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			qps, burst, err := clientRate(tc.qps, tc.burst)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cfg := &rest.Config{Host: "https://127.0.0.1:6443"}
			cfg.QPS, cfg.Burst = qps, burst
			if cfg.QPS != tc.wantQPS || cfg.Burst != tc.wantBurst {
				t.Errorf("QPS %v burst %d, want %v and %d", cfg.QPS, cfg.Burst, tc.wantQPS, tc.wantBurst)
			}
			// What client-go makes of it: a limiter when a rate is given,
			// none otherwise.
			client, err := rest.RESTClientFor(withSerializer(cfg))
			if err != nil {
				t.Fatal(err)
			}
			limiter := client.GetRateLimiter()
			if tc.wantQPS < 0 {
				if limiter != nil {
					t.Errorf("a client-side limiter of %v per second, want none", limiter.QPS())
				}
				return
			}
			if limiter == nil || limiter.QPS() != tc.wantQPS {
				t.Errorf("limiter %v, want %v per second", limiter, tc.wantQPS)
			}
		})
	}
}

// withSerializer completes cfg as RESTClientFor requires.
func withSerializer(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	return cfg
}
