package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// FleetOptions configure a simulated fleet.
type FleetOptions struct {
	Options
	// StateDir holds one subdirectory per device.
	StateDir string
	// Size is the number of devices.
	Size int
	// Platform of every device.
	Platform string
	// Prefix starts every serial number; the index follows.
	Prefix      string
	Delay       time.Duration
	FailureRate float64
	// LogExecutions makes each device append the commands it runs to
	// executions.log in its state directory (Simulated.ExecutionLog).
	LogExecutions bool
	// StartSpread spreads the first connections over this long, so that a
	// fleet does not enroll in one burst.
	StartSpread time.Duration
}

// ExecutionLogName is the file in a simulated device's state directory that
// lists the commands it ran, with LogExecutions.
const ExecutionLogName = "executions.log"

// Fleet is a set of simulated devices, each with its own key, certificate,
// state directory and connection.
type Fleet struct {
	Agents  []*Agent
	Devices []*Simulated

	mu    sync.Mutex
	stops []context.CancelFunc
}

// NewFleet prepares size simulated devices.
func NewFleet(o FleetOptions, log logr.Logger) (*Fleet, error) {
	f := &Fleet{}
	for i := range o.Size {
		serial := fmt.Sprintf("%s%05d", o.Prefix, i)
		state, err := LoadState(filepath.Join(o.StateDir, serial))
		if err != nil {
			return nil, err
		}
		dev := &Simulated{Serial: serial, PlatformName: o.Platform, Model: "Simulated " + o.Platform,
			OSVersion: "1.0", Delay: o.Delay, FailureRate: o.FailureRate}
		if o.LogExecutions {
			dev.ExecutionLog = filepath.Join(o.StateDir, serial, ExecutionLogName)
		}
		f.Devices = append(f.Devices, dev)
		f.Agents = append(f.Agents, New(o.Options, state, dev, log.WithValues("serial", serial)))
	}
	return f, nil
}

// Run runs every agent until ctx ends and returns the errors of those that
// stopped on their own.
func (f *Fleet) Run(ctx context.Context, spread time.Duration) []error {
	var wg sync.WaitGroup
	errs := make([]error, len(f.Agents))
	f.mu.Lock()
	stops := make([]context.CancelFunc, len(f.Agents))
	contexts := make([]context.Context, len(f.Agents))
	for i := range f.Agents {
		contexts[i], stops[i] = context.WithCancel(ctx)
	}
	f.stops = stops
	f.mu.Unlock()
	for i, a := range f.Agents {
		ctx := contexts[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if spread > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(spread * time.Duration(i) / time.Duration(len(f.Agents))):
				}
			}
			errs[i] = a.Run(ctx)
		}()
	}
	wg.Wait()
	for _, stop := range stops {
		stop()
	}
	var out []error
	for i, err := range errs {
		if err != nil {
			out = append(out, fmt.Errorf("%s: %w", f.Devices[i].Serial, err))
		}
	}
	return out
}

// Stop stops agent i of a running fleet, as a device switched off does:
// its stream ends and it does not come back. Its Run returns no error.
// Stop reports false when the fleet is not running or has no agent i.
func (f *Fleet) Stop(i int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i < 0 || i >= len(f.stops) {
		return false
	}
	f.stops[i]()
	return true
}
