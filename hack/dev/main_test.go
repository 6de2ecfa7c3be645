package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubemdm/kubemdm/internal/loopback"
)

// TestBusyPortFailsFast runs the launcher as make dev does, with the
// gateway's address already taken, and expects it to say so at once instead
// of starting a control plane and timing out.
func TestBusyPortFailsFast(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kubemdm-dev")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the launcher: %v\n%s", err, out)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	for _, flag := range []string{"--gateway", "--probe-address"} {
		t.Run(flag, func(t *testing.T) {
			// The other address is free, whatever else runs on this machine.
			other := map[string]string{"--gateway": "--probe-address", "--probe-address": "--gateway"}[flag]
			cmd := exec.Command(bin, "--state-dir", t.TempDir(), flag, busy.Addr().String(), other, freeAddr(t))
			// The launcher must refuse before it needs the control plane.
			cmd.Env = append(os.Environ(), "KUBEBUILDER_ASSETS=/nonexistent")
			cmd.Dir = filepath.Join("..", "..")
			start := time.Now()
			out, err := cmd.CombinedOutput()
			took := time.Since(start)
			if err == nil {
				t.Fatalf("the launcher succeeded with %s taken:\n%s", busy.Addr(), out)
			}
			variable := map[string]string{"--gateway": "GATEWAY_ADDR", "--probe-address": "PROBE_ADDR"}[flag]
			for _, want := range []string{busy.Addr().String() + " is taken", "make dev " + variable + "="} {
				if !strings.Contains(string(out), want) {
					t.Errorf("output does not say %q:\n%s", want, out)
				}
			}
			if strings.Contains(string(out), "Starting the local control plane") {
				t.Errorf("the launcher started the control plane before checking its ports:\n%s", out)
			}
			if took > 5*time.Second {
				t.Errorf("the launcher took %s to report a taken port", took)
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := loopback.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
