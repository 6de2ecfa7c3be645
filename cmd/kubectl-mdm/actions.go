package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// actionVerb is a kubectl mdm verb that creates a DeviceAction.
type actionVerb struct {
	name   string
	action mdmv1alpha1.ActionType
	short  string
}

var actionVerbs = []actionVerb{
	{"lock", mdmv1alpha1.ActionLock, "Lock devices"},
	{"unlock", mdmv1alpha1.ActionUnlock, "Unlock devices"},
	{"restart", mdmv1alpha1.ActionRestart, "Restart devices"},
	{"sync", mdmv1alpha1.ActionSync, "Have devices check in and report now"},
	{"message", mdmv1alpha1.ActionSendMessage, "Show a message on devices (--title, --body)"},
	{"wipe", mdmv1alpha1.ActionWipe, "Erase devices (destructive)"},
	{"retire", mdmv1alpha1.ActionRetire, "Remove management and its data from devices (destructive)"},
	{"unenroll", mdmv1alpha1.ActionUnenroll, "Unenroll devices (destructive)"},
	{"disable", mdmv1alpha1.ActionDisable, "Make lost or stolen devices unusable"},
	{"reenable", mdmv1alpha1.ActionReenable, "Make disabled devices usable again"},
	{"deprovision", mdmv1alpha1.ActionDeprovision, "Deprovision ChromeOS devices (--reason; destructive)"},
}

// actionFlags are the flags of an action verb.
type actionFlags struct {
	selector, confirm, output, title, body, reason string
	dryRun, wait                                   bool
	timeout                                        time.Duration
}

func newActionCommand(s *session, v actionVerb) *cobra.Command {
	f := &actionFlags{}
	cmd := &cobra.Command{
		Use:   v.name + " (DEVICE... | -l SELECTOR)",
		Short: v.short,
		Long: v.short + `.

Creates a DeviceAction with a generated name. A destructive action asks you to
type its name, or takes --confirm NAME in a script. --dry-run shows whether each
device can run it, and sends nothing; --wait follows it to the end.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAction(cmd.Context(), s, v, f, args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&f.selector, "selector", "l", "", "Label selector of the devices, instead of names.")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "Show whether each device can run the action, and send nothing.")
	cmd.Flags().BoolVar(&f.wait, "wait", false, "Follow the action until it finishes, as kubectl mdm watch does.")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 10*time.Minute, "How long --wait and --dry-run wait.")
	cmd.Flags().StringVarP(&f.output, "output", "o", "", "json or yaml: print the DeviceAction; name: its name; wide: with --wait, how long each device took.")
	if v.action.Destructive() {
		cmd.Flags().StringVar(&f.confirm, "confirm", "", "The action's name ("+string(v.action)+"), to run it without being asked.")
	}
	switch v.action {
	case mdmv1alpha1.ActionSendMessage:
		cmd.Flags().StringVar(&f.title, "title", "", "The message's title.")
		cmd.Flags().StringVar(&f.body, "body", "", "The message's text.")
	case mdmv1alpha1.ActionDeprovision:
		cmd.Flags().StringVar(&f.reason, "reason", "", "Why the device leaves: SameModelReplacement, DifferentModelReplacement, RetiringDevice or UpgradeTransfer.")
	}
	return cmd
}

func runAction(ctx context.Context, s *session, v actionVerb, f *actionFlags, devices []string, in io.Reader, out, errOut io.Writer) error {
	if (len(devices) == 0) == (f.selector == "") {
		return errors.New("name the devices, or give -l SELECTOR, not both")
	}
	if err := checkOutput(f.output, "json", "yaml", "name", "wide"); err != nil {
		return err
	}
	// With -o json, yaml or name, stdout holds the object alone; progress
	// goes to stderr.
	printsObject := f.output != "" && f.output != "wide"
	progressOut := out
	if printsObject {
		progressOut = errOut
	}
	spec := mdmv1alpha1.DeviceActionSpec{Action: v.action, Devices: devices, DryRun: f.dryRun}
	if f.selector != "" {
		sel, err := metav1.ParseToLabelSelector(f.selector)
		if err != nil {
			return fmt.Errorf("-l %q: %w", f.selector, err)
		}
		spec.Selector = sel
	}
	switch v.action {
	case mdmv1alpha1.ActionSendMessage:
		if f.title == "" || f.body == "" {
			return errors.New("message needs --title and --body")
		}
		spec.Parameters = &mdmv1alpha1.ActionParameters{Message: &mdmv1alpha1.MessageParameters{Title: f.title, Body: f.body}}
	case mdmv1alpha1.ActionDeprovision:
		if f.reason == "" {
			return errors.New("deprovision needs --reason")
		}
		spec.Parameters = &mdmv1alpha1.ActionParameters{DeprovisionReason: mdmv1alpha1.DeprovisionReason(f.reason)}
	}
	if v.action.Destructive() && !f.dryRun {
		if err := confirm(v.action, f.confirm, in, errOut); err != nil {
			return err
		}
	}
	if v.action.NeedsConfirm() {
		// Confirmed above, or a dry run, which the apiserver still wants
		// confirmed and which sends nothing.
		spec.Confirm = string(v.action)
	}
	if f.dryRun {
		// A dry run's answer is read at once; it need not stay.
		spec.TTLSecondsAfterFinished = ptr.To[int32](600)
	}
	a := &mdmv1alpha1.DeviceAction{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, GenerateName: v.name + "-"}, Spec: spec}
	if err := s.client.Create(ctx, a, client.FieldOwner(fieldManager)); err != nil {
		return err
	}
	if f.output == "" || (f.output == "wide" && (f.dryRun || f.wait)) {
		fmt.Fprintf(out, "deviceaction.mdm.kubemdm.io/%s created\n", a.Name)
	}
	switch {
	case f.dryRun:
		done, err := follow(ctx, s, a.Name, f.timeout, io.Discard, false)
		if err != nil {
			return err
		}
		table := progressOut
		if printsObject {
			if err := printObject(out, s, done, f.output); err != nil {
				return err
			}
			table = io.Discard
		}
		return printEligibility(table, done)
	case f.wait:
		done, err := follow(ctx, s, a.Name, f.timeout, progressOut, f.output == "wide")
		if err != nil {
			return err
		}
		if printsObject {
			if err := printObject(out, s, done, f.output); err != nil {
				return err
			}
		}
		return finishedWell(done)
	case f.output == "wide":
		return printQueued(out, a)
	case printsObject:
		return printObject(out, s, a, f.output)
	}
	return nil
}

// printQueued is the created action as a row: what it does and to which
// devices.
func printQueued(out io.Writer, a *mdmv1alpha1.DeviceAction) error {
	devices, selector := strings.Join(a.Spec.Devices, ","), "<none>"
	if devices == "" {
		devices = "<selector>"
	}
	if a.Spec.Selector != nil {
		selector = metav1.FormatLabelSelector(a.Spec.Selector)
	}
	w := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
	fmt.Fprintln(w, "NAME\tACTION\tDEVICES\tSELECTOR")
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", a.Name, a.Spec.Action, devices, selector)
	return w.Flush()
}

// fieldManager owns what the plugin writes.
const fieldManager = "kubectl-mdm"

// confirm asks a person to type the action's name, or takes --confirm; a
// script without --confirm is refused rather than left waiting.
func confirm(action mdmv1alpha1.ActionType, given string, in io.Reader, errOut io.Writer) error {
	if given == "" {
		if file, ok := in.(*os.File); !ok || !isTerminal(file) {
			return &exitError{2, fmt.Errorf("%s is destructive: give --confirm %s to run it without a terminal", action, action)}
		}
		fmt.Fprintf(errOut, "%s cannot be undone. Type %s to go on: ", action, action)
		line, _ := bufio.NewReader(in).ReadString('\n')
		given = strings.TrimSpace(line)
	}
	if given != string(action) {
		return &exitError{2, fmt.Errorf("not confirmed: %q is not %s", given, action)}
	}
	return nil
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// printEligibility is the dry run's answer per device, and fails when one
// cannot run the action.
func printEligibility(out io.Writer, a *mdmv1alpha1.DeviceAction) error {
	w := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
	fmt.Fprintln(w, "DEVICE\tELIGIBLE\tCODE\tREASON")
	ineligible := 0
	for _, r := range a.Status.Devices {
		eligible := r.Phase == mdmv1alpha1.CommandSucceeded
		if !eligible {
			ineligible++
		}
		fmt.Fprintf(w, "%s\t%t\t%d\t%s\n", r.Name, eligible, r.Code, r.Message)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(a.Status.Devices) == 0 {
		// Refused as a whole (too many devices, a selector matching none).
		return &exitError{1, fmt.Errorf("deviceaction %s ended %s: %s", a.Name, a.Status.Phase, readyMessage(a))}
	}
	if ineligible > 0 {
		return &exitError{1, fmt.Errorf("%d of %d devices cannot run %s", ineligible, len(a.Status.Devices), a.Spec.Action)}
	}
	return nil
}

// readyMessage is what the action's Ready condition says.
func readyMessage(a *mdmv1alpha1.DeviceAction) string {
	for _, c := range a.Status.Conditions {
		if c.Type == mdmv1alpha1.ConditionReady {
			return c.Message
		}
	}
	return "no devices"
}
