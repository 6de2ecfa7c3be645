package controllers

import (
	"sync"
	"testing"
	"time"
)

// TestDeviceClaims: a claim on devices that another holds waits until they
// are given back; a claim on other devices does not; claims are all or
// nothing, so two reconciles that each need the other's device never each
// hold one.
func TestDeviceClaims(t *testing.T) {
	var c deviceClaims
	first := claim{claims: &c}
	first.take("ns", []string{"a", "b"})

	done := make(chan string, 4)
	var wg sync.WaitGroup
	run := func(name, namespace string, devices ...string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := claim{claims: &c}
			h.take(namespace, devices)
			done <- name
			h.release()
		}()
	}
	run("disjoint", "ns", "c")
	run("same name, other namespace", "other", "a")
	for range 2 {
		select {
		case got := <-done:
			t.Logf("%s ran beside the held claim", got)
		case <-time.After(10 * time.Second):
			t.Fatal("a claim on devices nobody holds waits")
		}
	}
	run("overlapping", "ns", "b", "d")
	select {
	case got := <-done:
		t.Fatalf("%q took a device another reconcile holds", got)
	case <-time.After(100 * time.Millisecond):
	}
	// Taking again within one reconcile is a no-op, not a deadlock.
	first.take("ns", []string{"a", "b"})
	first.release()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a claim still waits after its device was given back")
	}
	wg.Wait()

	// Crossing claims: each needs the other's device; all-or-nothing
	// claiming lets both finish.
	for range 100 {
		run("x", "ns", "p", "q")
		run("y", "ns", "q", "p")
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	for range 200 {
		<-done
	}
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("crossing claims deadlocked")
	}
	if len(c.held) != 0 {
		t.Fatalf("claims left held: %v", c.held)
	}
}
