package docs

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubemdm/kubemdm/internal/loopback"
)

// TestReadmeRunsAsWritten starts `make dev` as the README says, on free
// ports and in a scratch directory, then runs every command of the README's
// console blocks in order, in a shell with the environment make dev prints,
// and compares what each prints with what the README shows.
func TestReadmeRunsAsWritten(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	steps := parseConsoleBlocks(string(readme))
	if len(steps) < 10 || steps[0].command != "make dev" {
		t.Fatalf("the README's walk-through should start with `$ make dev`; found %d commands", len(steps))
	}

	// The reader's checkout is /home/you/kubemdm and the gateway is on
	// 127.0.0.1:7443; here both are whatever is free.
	work := t.TempDir()
	if err := os.Symlink(filepath.Join(root, "config"), filepath.Join(work, "config")); err != nil {
		t.Fatal(err)
	}
	gateway := freeAddr(t)
	local := strings.NewReplacer("/home/you/kubemdm", work, "127.0.0.1:7443", gateway)

	env := startDev(t, root, work, gateway, steps[0], local)
	for _, s := range steps[1:] {
		runStep(t, work, env, s, local)
	}
}

// startDev runs make dev in its own process group, checks what it prints
// until it is ready and returns the environment its export line sets. At the
// end of the test it sends Ctrl-C to the group, as a terminal would.
func startDev(t *testing.T, root, work, gateway string, s step, local *strings.Replacer) []string {
	t.Helper()
	cmd := exec.Command("make", "dev", "DEV_DIR="+filepath.Join(work, ".dev"), "GATEWAY_ADDR="+gateway, "PROBE_ADDR="+freeAddr(t))
	cmd.Dir = root
	cmd.Env = withoutMake(os.Environ())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		// The README: "Ctrl-C in the first shell stops the manager and the
		// control plane". make itself ends by the signal, as it does in a
		// terminal; the launcher must have stopped everything it started.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		var after []string
		drained := make(chan struct{})
		go func() {
			for l := range lines {
				after = append(after, l)
			}
			close(drained)
		}()
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Errorf("make dev was still running 60s after Ctrl-C")
			return
		}
		<-drained
		if !slices.Contains(after, "Stopping the local control plane") {
			t.Errorf("make dev did not stop the control plane on Ctrl-C:\n%s\n%s", strings.Join(after, "\n"), stderr.String())
		}
		if ln, err := net.Listen("tcp", gateway); err != nil {
			t.Errorf("the gateway's address is still taken after make dev stopped: %v", err)
		} else {
			_ = ln.Close()
		}
	})

	// make echoes its recipe first; the README shows the launcher's output.
	var got []string
	timeout := time.After(10 * time.Minute)
	for started := false; ; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("make dev exited before it was ready:\n%s\n%s", strings.Join(got, "\n"), stderr.String())
			}
			started = started || strings.HasPrefix(l, "Starting the local control plane")
			if started {
				got = append(got, l)
			}
		case <-timeout:
			t.Fatalf("make dev was not ready after 10 minutes:\n%s\n%s", strings.Join(got, "\n"), stderr.String())
		}
		if len(got) > 0 && got[len(got)-1] == "Press Ctrl-C to stop." {
			break
		}
	}
	if m := mismatch(localize(s.want, local), got); m != "" {
		t.Errorf("README line %d, `make dev`: %s\ngot:\n%s", s.line, m, strings.Join(got, "\n"))
	}

	env := withoutMake(os.Environ())
	for _, l := range got {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "export" {
			continue
		}
		kubeconfig, okK := strings.CutPrefix(f[1], "KUBECONFIG=")
		path, okP := strings.CutPrefix(f[2], "PATH=")
		dir, okD := strings.CutSuffix(path, ":$PATH")
		if !okK || !okP || !okD {
			t.Fatalf("make dev's export line is not `export KUBECONFIG=… PATH=…:$PATH`: %q", l)
		}
		return append(env, "KUBECONFIG="+kubeconfig, "PATH="+dir+":"+os.Getenv("PATH"))
	}
	t.Fatalf("make dev printed no export line:\n%s", strings.Join(got, "\n"))
	return nil
}

// runStep runs one README command in bash from the reader's checkout. A
// command that only reads (kubectl get, kubectl wait, curl) is retried for a
// while, since the README shows the state the system settles in.
func runStep(t *testing.T, work string, env []string, s step, local *strings.Replacer) {
	t.Helper()
	command := local.Replace(s.command)
	want := localize(s.want, local)
	readOnly := strings.HasPrefix(command, "kubectl get ") || strings.HasPrefix(command, "kubectl wait ") || strings.HasPrefix(command, "curl ")
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", command)
		cmd.Dir, cmd.Env = work, env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		cancel()
		got := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
		problem := mismatch(want, got)
		if problem == "" && (err != nil) != expectsFailure(want) {
			problem = "exit status " + exitStatus(err) + ", which the README does not show"
		}
		if problem == "" {
			return
		}
		if !readOnly || time.Now().After(deadline) {
			t.Errorf("README line %d, `%s`: %s\ngot:\n%s", s.line, s.command, problem, out.String())
			return
		}
		time.Sleep(time.Second)
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "0"
	}
	return err.Error()
}

func localize(lines []string, local *strings.Replacer) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = local.Replace(l)
	}
	return out
}

// withoutMake drops the variables of an outer make (make test), so the inner
// make dev runs as it would from a shell.
func withoutMake(env []string) []string {
	var out []string
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); name != "MAKEFLAGS" && name != "MFLAGS" && name != "MAKELEVEL" && name != "MAKEFILES" {
			out = append(out, kv)
		}
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := loopback.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
