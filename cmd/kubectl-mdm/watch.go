package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func newWatchCommand(s *session) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "watch ACTION",
		Short: "Follow a DeviceAction until it finishes: a progress bar and each device's outcome",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// As -o name prints it, or as kubectl names it.
			name := args[0]
			for _, prefix := range []string{"deviceaction.mdm.kubemdm.io/", "deviceaction/", "deviceactions/"} {
				name = strings.TrimPrefix(name, prefix)
			}
			a, err := follow(cmd.Context(), s, name, timeout, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			return finishedWell(a)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "Give up after this long (0: never).")
	return cmd
}

// follow reads the action until it finishes, showing its progress on out:
// a bar redrawn in place on a terminal, a line per device change otherwise;
// then a table of every device.
func follow(ctx context.Context, s *session, name string, timeout time.Duration, out io.Writer) (*mdmv1alpha1.DeviceAction, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	file, isFile := out.(*os.File)
	tty := isFile && isTerminal(file)
	seen := map[string]mdmv1alpha1.DeviceCommandPhase{}
	a := &mdmv1alpha1.DeviceAction{}
	for {
		err := s.client.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: name}, a)
		switch {
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("deviceaction %s was deleted before it finished", name)
		case err != nil && ctx.Err() == nil:
			// An apiserver that went away for a moment: ask again.
			fmt.Fprintf(os.Stderr, "reading deviceaction %s: %v\n", name, err)
			time.Sleep(time.Second)
			continue
		case err != nil:
			return nil, fmt.Errorf("deviceaction %s has not finished: %w", name, ctx.Err())
		}
		if tty {
			// \033[K clears what a longer line left.
			fmt.Fprintf(out, "\r%s\033[K", progress(a))
		} else {
			for _, r := range a.Status.Devices {
				if seen[r.Name] != r.Phase {
					seen[r.Name] = r.Phase
					fmt.Fprintf(out, "%s %s%s\n", r.Name, r.Phase, outcome(r))
				}
			}
		}
		if a.Status.Phase.Finished() {
			if tty {
				fmt.Fprintln(out)
			}
			return a, printRows(out, a)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("deviceaction %s has not finished: %w", name, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// progress is a one-line bar of the finished rows.
func progress(a *mdmv1alpha1.DeviceAction) string {
	total, done := len(a.Status.Devices), 0
	counts := map[mdmv1alpha1.DeviceCommandPhase]int{}
	for _, r := range a.Status.Devices {
		counts[r.Phase]++
		if !r.Phase.Unfinished() {
			done++
		}
	}
	const width = 30
	filled := 0
	if total > 0 {
		filled = done * width / total
	}
	return fmt.Sprintf("[%s%s] %d/%d  queued %d  delivered %d  succeeded %d  failed %d ", strings.Repeat("#", filled), strings.Repeat("-", width-filled),
		done, total, counts[mdmv1alpha1.CommandQueued], counts[mdmv1alpha1.CommandDelivered], counts[mdmv1alpha1.CommandSucceeded],
		counts[mdmv1alpha1.CommandFailed]+counts[mdmv1alpha1.CommandExpired]+counts[mdmv1alpha1.CommandIneligible])
}

func outcome(r mdmv1alpha1.DeviceResult) string {
	if r.Code == 0 && r.Message == "" {
		return ""
	}
	return fmt.Sprintf(" (code %d: %s)", r.Code, r.Message)
}

// printRows is the table of every device of the action.
func printRows(out io.Writer, a *mdmv1alpha1.DeviceAction) error {
	w := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
	fmt.Fprintf(w, "deviceaction/%s %s\n", a.Name, a.Status.Phase)
	fmt.Fprintln(w, "DEVICE\tPHASE\tCODE\tMESSAGE")
	for _, r := range a.Status.Devices {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", r.Name, r.Phase, r.Code, r.Message)
	}
	return w.Flush()
}

// finishedWell fails unless every device succeeded.
func finishedWell(a *mdmv1alpha1.DeviceAction) error {
	if a.Status.Phase != mdmv1alpha1.ActionSucceeded {
		return &exitError{1, fmt.Errorf("deviceaction %s ended %s", a.Name, a.Status.Phase)}
	}
	return nil
}
