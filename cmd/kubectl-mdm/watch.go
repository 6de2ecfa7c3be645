package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

func newWatchCommand(s *session) *cobra.Command {
	var timeout time.Duration
	var output string
	cmd := &cobra.Command{
		Use:   "watch ACTION",
		Short: "Follow a DeviceAction until it finishes: a progress bar and each device's outcome",
		Long: `Follow a DeviceAction until it finishes.

On a terminal it redraws a progress bar and a table of the devices (failed and
unfinished ones first) in place; otherwise it prints a line each time a device
changes phase. At the end it prints every device's outcome; -o wide adds how
long each command took to be delivered and to complete.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "wide"); err != nil {
				return err
			}
			// As -o name prints it, or as kubectl names it.
			name := args[0]
			for _, prefix := range []string{"deviceaction.mdm.kubemdm.io/", "deviceaction/", "deviceactions/"} {
				name = strings.TrimPrefix(name, prefix)
			}
			a, err := follow(cmd.Context(), s, name, timeout, cmd.OutOrStdout(), output == "wide")
			if err != nil {
				return err
			}
			return finishedWell(a)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "Give up after this long (0: never).")
	cmd.Flags().StringVarP(&output, "output", "o", "", "wide: add how long each device took.")
	return cmd
}

// follow reads the action until it finishes, showing its progress on out:
// the bar and the devices redrawn in place on a terminal, a line per device
// change otherwise; then a table of every device.
func follow(ctx context.Context, s *session, name string, timeout time.Duration, out io.Writer, wide bool) (*mdmv1alpha1.DeviceAction, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	file, isFile := out.(*os.File)
	tty := isFile && isTerminal(file)
	seen := map[string]mdmv1alpha1.DeviceCommandPhase{}
	drawn := 0
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
		finished := a.Status.Phase.Finished()
		switch {
		case tty:
			// Back to where the last frame began, and clear it: the new one
			// may be shorter.
			if drawn > 0 {
				fmt.Fprintf(out, "\033[%dA", drawn)
			}
			fmt.Fprint(out, "\r\033[J")
			if finished {
				fmt.Fprintln(out, progress(a))
				break
			}
			f := frame(a, terminalRows(file))
			fmt.Fprint(out, f)
			drawn = strings.Count(f, "\n")
		default:
			for _, r := range a.Status.Devices {
				if seen[r.Name] != r.Phase {
					seen[r.Name] = r.Phase
					fmt.Fprintf(out, "%s %s%s\n", r.Name, r.Phase, outcome(r))
				}
			}
		}
		if finished {
			return a, printRows(out, a, wide)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("deviceaction %s has not finished: %w", name, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// terminalRows is how many device rows fit under the bar: the terminal's
// height less the bar, the header, the "more" line and the prompt.
func terminalRows(f *os.File) int {
	_, h, err := term.GetSize(int(f.Fd()))
	if err != nil || h < 8 {
		return 4
	}
	return h - 4
}

// frame is what a terminal shows while the action runs: the bar, then the
// devices that need looking at first (failed, then unfinished, then done),
// cut to maxRows.
func frame(a *mdmv1alpha1.DeviceAction, maxRows int) string {
	rows := slices.Clone(a.Status.Devices)
	slices.SortStableFunc(rows, func(x, y mdmv1alpha1.DeviceResult) int { return cmp.Compare(urgency(x.Phase), urgency(y.Phase)) })
	var b strings.Builder
	fmt.Fprintln(&b, progress(a))
	w := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	fmt.Fprintln(w, "DEVICE\tPHASE\tCODE\tMESSAGE")
	for _, r := range rows[:min(len(rows), maxRows)] {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", r.Name, r.Phase, r.Code, r.Message)
	}
	_ = w.Flush()
	if hidden := len(rows) - maxRows; hidden > 0 {
		fmt.Fprintf(&b, "… and %d more\n", hidden)
	}
	return b.String()
}

// urgency orders the rows a person watching wants to see first.
func urgency(p mdmv1alpha1.DeviceCommandPhase) int {
	switch {
	case p == mdmv1alpha1.CommandFailed || p == mdmv1alpha1.CommandExpired || p == mdmv1alpha1.CommandIneligible:
		return 0
	case p.Unfinished():
		return 1
	}
	return 2
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
	return fmt.Sprintf("[%s%s] %d/%d  queued %d  delivered %d  succeeded %d  failed %d", strings.Repeat("#", filled), strings.Repeat("-", width-filled),
		done, total, counts[mdmv1alpha1.CommandPending]+counts[mdmv1alpha1.CommandQueued], counts[mdmv1alpha1.CommandDelivered], counts[mdmv1alpha1.CommandSucceeded],
		counts[mdmv1alpha1.CommandFailed]+counts[mdmv1alpha1.CommandExpired]+counts[mdmv1alpha1.CommandIneligible])
}

func outcome(r mdmv1alpha1.DeviceResult) string {
	if r.Code == 0 && r.Message == "" {
		return ""
	}
	return fmt.Sprintf(" (code %d: %s)", r.Code, r.Message)
}

// printRows is the table of every device of the action; wide adds how long
// each command waited to be delivered and to complete, from when it was
// queued.
func printRows(out io.Writer, a *mdmv1alpha1.DeviceAction, wide bool) error {
	w := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
	fmt.Fprintf(w, "deviceaction/%s %s\n", a.Name, a.Status.Phase)
	header := "DEVICE\tPHASE\tCODE\tMESSAGE"
	if wide {
		header += "\tDELIVERED IN\tCOMPLETED IN"
	}
	fmt.Fprintln(w, header)
	for _, r := range a.Status.Devices {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s", r.Name, r.Phase, r.Code, r.Message)
		if wide {
			fmt.Fprintf(w, "\t%s\t%s", since(r.QueuedAt, r.DeliveredAt), since(r.QueuedAt, r.CompletedAt))
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}

// since is how long after from the command reached to, or "-" when it
// has not.
func since(from, to *metav1.Time) string {
	if from == nil || to == nil {
		return "-"
	}
	return to.Sub(from.Time).Round(time.Millisecond).String()
}

// finishedWell fails unless every device succeeded.
func finishedWell(a *mdmv1alpha1.DeviceAction) error {
	if a.Status.Phase != mdmv1alpha1.ActionSucceeded {
		return &exitError{1, fmt.Errorf("deviceaction %s ended %s", a.Name, a.Status.Phase)}
	}
	return nil
}
