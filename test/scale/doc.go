// Package scale measures kubemdm at fleet size, from outside, on a local
// control plane: a real kube-apiserver and etcd, the manager built from
// this checkout and run as its own process, and a fleet of simulated
// devices in this process, each with its own key, certificate and mTLS
// connection.
//
// Times are taken next to a baseline measured on the same apiserver in the
// same run (the rate at which eight workers create ConfigMaps, and how long
// a created object takes to reach a watch) and reported as ratios to it:
// the machines this runs on are shared and noisy. The reconnect storm is
// held to an absolute 30 seconds, as its target says. Writes are counted by
// the apiserver itself, from its apiserver_request_total metric, less the
// writes the harness made; memory is the manager's RSS and the harness's
// own heap and stacks, per device.
//
// make scale runs a Profile of DEVICES connected devices and REGISTERED
// Device objects and prints the table; make test runs a small profile and
// fails when a target is missed by more than the noise margin. The results
// and the machine they ran on are in docs/scale.md.
package scale
