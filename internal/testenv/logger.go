package testenv

import (
	"io"
	"sync/atomic"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// LogWriter is where a test binary's controller-runtime logger writes:
// nowhere until Set, then to the writer given.
type LogWriter struct {
	w atomic.Pointer[io.Writer]
}

// Set sends the log from now on to w.
func (l *LogWriter) Set(w io.Writer) { l.w.Store(&w) }

func (l *LogWriter) Write(p []byte) (int, error) {
	if w := l.w.Load(); w != nil {
		return (*w).Write(p)
	}
	return len(p), nil
}

// SetLogger installs controller-runtime's logger at once, to be called from
// a test package's init. Set later, in a suite's BeforeSuite, it can come
// too late: when none is set within 30 seconds of the binary's start, which
// the package's plain tests can take on a loaded machine, controller-runtime
// settles on a logger that discards everything and ignores every later one.
func SetLogger(level zapcore.Level) *LogWriter {
	out := &LogWriter{}
	ctrl.SetLogger(zap.New(zap.WriteTo(out), zap.UseDevMode(true), zap.Level(level)))
	return out
}
