package packaging

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestPluginKrewInstall builds the plugin's archive and krew manifest for
// this machine as make plugin-archives does for a release, and installs it
// with krew: the manifest's checksum, the archive's layout and the binary
// kubectl then finds are what a person installing it gets.
func TestPluginKrewInstall(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	platform := runtime.GOOS + "_" + runtime.GOARCH
	run(t, root, "make", "--no-print-directory", "plugin-archives", "PLUGIN_DIR="+dist, "PLUGIN_PLATFORMS="+runtime.GOOS+"/"+runtime.GOARCH, "PLUGIN_VERSION=1.2.3")
	manifest := filepath.Join(dist, "mdm.yaml")
	archive := filepath.Join(dist, "kubectl-mdm_"+platform+".tar.gz")

	if names := archived(t, archive); !slices.Equal(names, []string{"./", "./LICENSE", "./kubectl-mdm"}) {
		t.Errorf("the archive holds %v; want the binary and the LICENSE", names)
	}
	m, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"version: v1.2.3", "download/v1.2.3/kubectl-mdm_" + platform + ".tar.gz", "bin: kubectl-mdm"} {
		if !strings.Contains(string(m), want) {
			t.Errorf("the manifest lacks %q:\n%s", want, m)
		}
	}

	run(t, root, "make", "--no-print-directory", "krew")
	found, _ := filepath.Glob(filepath.Join(root, "bin", "krew-*"))
	if len(found) != 1 {
		t.Fatalf("krew: %v", found)
	}
	krew := func(krewRoot string, args ...string) (string, error) {
		cmd := exec.Command(found[0], args...)
		cmd.Env = append(os.Environ(), "KREW_ROOT="+krewRoot)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// An archive that is not the one the manifest names is refused.
	tampered := filepath.Join(t.TempDir(), "kubectl-mdm_"+platform+".tar.gz")
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tampered, append(b, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := krew(t.TempDir(), "install", "--manifest="+manifest, "--archive="+tampered); err == nil || !strings.Contains(out, "checksum") {
		t.Errorf("krew installed an archive whose checksum differs: %v\n%s", err, out)
	}

	krewRoot := t.TempDir()
	if out, err := krew(krewRoot, "install", "--manifest="+manifest, "--archive="+archive); err != nil {
		t.Fatalf("krew install: %v\n%s", err, out)
	}
	installed := filepath.Join(krewRoot, "bin", "kubectl-mdm")
	help := run(t, "", installed, "--help")
	if !strings.Contains(help, "kubectl mdm runs kubemdm's device actions") {
		t.Errorf("the installed plugin's help:\n%s", help)
	}
	// kubectl finds it where krew put it.
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		skipOutsideCI(t, "KUBEBUILDER_ASSETS is not set: no kubectl to find the plugin")
	}
	cmd := exec.Command(filepath.Join(assets, "kubectl"), "plugin", "list", "--name-only")
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(krewRoot, "bin")+":/usr/bin:/bin")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "kubectl-mdm") {
		t.Errorf("kubectl plugin list: %v\n%s", err, out)
	}
}

// archived lists the names in a .tar.gz, sorted.
func archived(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	r := tar.NewReader(gz)
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	slices.Sort(names)
	return names
}
