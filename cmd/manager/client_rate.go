package main

import "fmt"

// clientRate is the manager's client-side limit on apiserver requests, as
// rest.Config's QPS and Burst hold it, from the flags. A negative qps sets
// none, as controller-runtime does by default: the manager's writes are already bounded where they arise (the
// gateway's enrollments and reports take turns, each controller runs
// --max-concurrent-reconciles workers), and the apiserver's priority and
// fairness queues whatever is left with every other client. A positive qps
// caps everything the manager sends, reads and watches included; burst 0
// then allows two seconds' worth at once.
func clientRate(qps float32, burst int) (float32, int, error) {
	switch {
	case qps == 0:
		// client-go would read 0 as its default of 5 per second.
		return 0, 0, fmt.Errorf("--kube-api-qps 0 would allow 5 requests per second; give a rate, or a negative value for no client-side limit")
	case burst < 0:
		return 0, 0, fmt.Errorf("--kube-api-burst must not be negative, not %d", burst)
	case qps < 0:
		return -1, 0, nil
	case burst == 0:
		return qps, max(1, int(2*qps)), nil
	}
	return qps, burst, nil
}
