// Command kubemdm-agent is the reference device agent. It enrolls with an
// enrollment token, keeps its key and certificate in a state directory and
// holds a stream to the gateway. --simulate N runs N virtual devices in one
// process instead of managing the host.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubemdm/kubemdm/agent"
)

// exitReleased is the exit status of an agent whose device was retired,
// unenrolled or deprovisioned (RestartPreventExitStatus in its unit).
const exitReleased = 3

// usage explains the two ways the agent runs.
const usage = `Usage:
  kubemdm-agent enroll --gateway HOST:PORT --token TOKEN (--ca-pin SHA256 | --ca-file CA.pem) [flags]
      Enroll this device once, save its identity in --state-dir and exit.
  kubemdm-agent [flags]
      Run: enroll first if needed, then hold a stream to the gateway. The
      gateway an enrolled agent used is saved, so --gateway may be left out.

Flags:
`

func main() {
	enrollOnly := len(os.Args) > 1 && os.Args[1] == "enroll"
	args := os.Args[1:]
	if enrollOnly {
		args = os.Args[2:]
	}
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	var (
		gateway          = flag.String("gateway", "", "Gateway address, host:port.")
		token            = flag.String("token", os.Getenv("KUBEMDM_TOKEN"), "Enrollment token (or $KUBEMDM_TOKEN); needed only until enrolled.")
		caFile           = flag.String("ca-file", "", "PEM bundle that verifies the gateway (ca.crt of the token's Secret).")
		caPin            = flag.String("ca-pin", "", "SHA-256 of the gateway CA certificate, as in the enrollment payload.")
		stateDir         = flag.String("state-dir", "/var/lib/kubemdm-agent", "Directory for the key, certificate and state.")
		platform         = flag.String("platform", "linux", "linux (manage this host, inside the state directory) or simulated.")
		simulate         = flag.Int("simulate", 0, "Run this many simulated devices in one process.")
		simPlatform      = flag.String("simulate-platform", "Linux", "Platform the simulated devices claim.")
		simPrefix        = flag.String("simulate-prefix", "SIM-", "Serial-number prefix of simulated devices.")
		simDelay         = flag.Duration("simulate-delay", 0, "How long a simulated command takes.")
		simFailure       = flag.Float64("simulate-failure-rate", 0, "Share of simulated commands that fail (0-1).")
		simLog           = flag.Bool("simulate-execution-log", false, "Each simulated device appends the commands it runs to executions.log in its state directory.")
		heartbeat        = flag.Duration("heartbeat", time.Minute, "How often a connected agent reports.")
		allowDestructive = flag.Bool("allow-destructive", false, "Allow reboot, wipe and logout on this host (linux platform).")
		root             = flag.String("root", "/", "Where the Linux platform writes the files and systemd units of configurations; it removes only what it wrote.")
		packageDir       = flag.String("package-dir", "", "Directory of .deb files (NAME_VERSION_ARCH.deb) the Linux platform installs Present packages from; on / it falls back to apt-get.")
	)
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	if err := flag.CommandLine.Parse(args); err != nil {
		os.Exit(2)
	}
	log := zap.New(zap.UseFlagOptions(&opts))
	ctrl.SetLogger(log)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := func() error {
		if *gateway == "" && *simulate == 0 {
			if state, err := agent.LoadState(*stateDir); err == nil {
				*gateway = state.Gateway
			}
		}
		if *gateway == "" {
			return errors.New("--gateway is required: the agent has not enrolled, or enrolled before it saved its gateway (give --gateway, in /etc/default/kubemdm-agent for the service)")
		}
		if enrollOnly && *token == "" {
			return errors.New("enroll needs --token (or $KUBEMDM_TOKEN)")
		}
		if enrollOnly && *caPin == "" && *caFile == "" {
			return errors.New("enroll needs --ca-pin or --ca-file to trust the gateway")
		}
		trust := agent.Trust{Pin: *caPin}
		if *caFile != "" {
			b, err := os.ReadFile(*caFile)
			if err != nil {
				return err
			}
			trust.CABundle = b
		}
		o := agent.Options{Gateway: *gateway, Token: *token, Trust: trust, Heartbeat: *heartbeat}
		if *simulate > 0 {
			fleet, err := agent.NewFleet(agent.FleetOptions{Options: o, StateDir: *stateDir, Size: *simulate,
				Platform: *simPlatform, Prefix: *simPrefix, Delay: *simDelay, FailureRate: *simFailure, LogExecutions: *simLog}, log)
			if err != nil {
				return err
			}
			log.Info("Running simulated devices", "count", *simulate)
			return errors.Join(fleet.Run(ctx, 2*time.Second)...)
		}
		state, err := agent.LoadState(*stateDir)
		if err != nil {
			return err
		}
		var p agent.Platform
		switch *platform {
		case "linux":
			l := &agent.Linux{Dir: filepath.Join(*stateDir, "managed"), Root: *root, PackageDir: *packageDir, AllowDestructive: *allowDestructive}
			if filepath.Clean(*root) == "/" {
				// Files written to the host's own root take effect once
				// systemd, dconf, the trust store and NetworkManager read
				// them again; under a sandbox root there is none to tell.
				l.Run = agent.RunCommand
			}
			p = l
		case "simulated":
			host, _ := os.Hostname()
			p = &agent.Simulated{Serial: host, PlatformName: *simPlatform, Model: "Simulated", OSVersion: "1.0"}
		default:
			return fmt.Errorf("--platform %q is not linux or simulated", *platform)
		}
		a := agent.New(o, state, p, log)
		if enrollOnly {
			if state.Enrolled() {
				fmt.Printf("Already enrolled as %s/%s\n", state.Identity.Namespace, state.Identity.Name)
				return nil
			}
			if err := a.Enroll(ctx); err != nil {
				return err
			}
			fmt.Printf("Enrolled as %s/%s; start the service: systemctl enable --now kubemdm-agent\n", state.Identity.Namespace, state.Identity.Name)
			return nil
		}
		return a.Run(ctx)
	}()
	if err != nil {
		log.Error(err, "Agent stopped")
		if errors.Is(err, agent.ErrReleased) {
			// The device may enroll again; until it does, the service
			// unit neither restarts it nor starts it at boot.
			if state, lerr := agent.LoadState(*stateDir); lerr == nil && *simulate == 0 {
				if ferr := state.Forget(); ferr != nil {
					log.Error(ferr, "Forgetting the identity")
				}
			}
			os.Exit(exitReleased)
		}
		os.Exit(1)
	}
}
