package testenv

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a child process a suite may kill, with its output in a log
// file.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	// Log is the file that holds the process's output.
	Log string
	// Exited is closed when the process has exited.
	Exited chan struct{}
}

// Launch starts cmd with its output in dir/name.log.
func Launch(name string, cmd *exec.Cmd, dir string) (*Process, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, Log: logPath, Exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(p.Exited)
	}()
	return p, nil
}

// Kill sends SIGKILL, no shutdown, no flush, no goodbye, and waits for the
// process to be gone.
func (p *Process) Kill() {
	select {
	case <-p.Exited:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.Exited
}

// Tail is the end of the process's log, at most n bytes.
func (p *Process) Tail(n int) string {
	raw, _ := os.ReadFile(p.Log)
	if len(raw) > n {
		raw = raw[len(raw)-n:]
	}
	return string(raw)
}

// RSS is the process's resident set size in bytes, from /proc.
func (p *Process) RSS() (int64, error) {
	return RSS(p.Cmd.Process.Pid)
}

// RSS is the resident set size of process pid in bytes, from /proc.
func RSS(pid int) (int64, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// CPU is the processor time process pid has used so far, in clock ticks
// of 1/100 s (user and system), from /proc.
func CPU(pid int) (int64, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count fields after it.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err := strconv.ParseInt(fields[11], 10, 64)
	if err != nil {
		return 0, err
	}
	stime, err := strconv.ParseInt(fields[12], 10, 64)
	return utime + stime, err
}

// Serving reports whether a TLS server answers a handshake at addr within
// two seconds. A manager binds the gateway's port before it serves, so a
// TCP connection alone says nothing.
func Serving(addr string) bool {
	d := &net.Dialer{Timeout: 2 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only whether it answers
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}
