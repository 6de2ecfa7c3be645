package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// TestForgetLetsTheDeviceEnrollAgain: a released agent drops its identity,
// so enroll works again and a unit waiting for cert.pem does not start it.
func TestForgetLetsTheDeviceEnrollAgain(t *testing.T) {
	dir := t.TempDir()
	s, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Identity, s.Gateway = Identity{Name: "box", Namespace: "fleet", UID: "u1"}, "mdm.example.com:443"
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{certFile, keyFile, caFile} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !s.Enrolled() {
		t.Fatal("not enrolled before Forget")
	}
	if err := s.Forget(); err != nil {
		t.Fatal(err)
	}
	again, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Enrolled() || again.Enrolled() || again.Gateway != "" {
		t.Errorf("still enrolled after Forget: %+v", again.Identity)
	}
	if _, err := os.Stat(filepath.Join(dir, certFile)); err == nil {
		t.Error("cert.pem is still there")
	}
}
