package main

import (
	"fmt"
	"math"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// limitClientRate applies --kube-api-qps and --kube-api-burst to cfg (see
// the README on what bounds the manager's load). A negative qps leaves no
// client-side limit, controller-runtime's default. A positive one is one
// token bucket shared by every client made from cfg: controller-runtime
// makes a REST client per resource type, each of which would otherwise get
// a bucket of its own, and the flag would cap nothing as a whole.
func limitClientRate(cfg *rest.Config, qps float64, burst int) error {
	switch {
	case math.IsNaN(qps) || math.IsInf(qps, 0):
		return fmt.Errorf("--kube-api-qps must be a number of requests per second, not %v", qps)
	case burst < 0:
		return fmt.Errorf("--kube-api-burst must not be negative, not %d", burst)
	case qps < 0 && burst > 0:
		return fmt.Errorf("--kube-api-burst %d needs a --kube-api-qps; a negative rate sets no limit", burst)
	case qps < 0:
		cfg.QPS, cfg.Burst, cfg.RateLimiter = -1, 0, nil
		return nil
	case float32(qps) == 0:
		// client-go would read 0 as its default of 5 per second.
		return fmt.Errorf("--kube-api-qps %v allows no request; give a rate, or a negative value for no client-side limit", qps)
	}
	if burst == 0 {
		burst = max(1, int(2*qps))
	}
	cfg.QPS, cfg.Burst = float32(qps), burst
	cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst)
	return nil
}
