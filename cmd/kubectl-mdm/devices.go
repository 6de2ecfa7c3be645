package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/conditions"
)

// deviceQuery is the filters of kubectl mdm devices.
type deviceQuery struct {
	selector, output                    string
	notSeen, seenWithin, enrolledWithin string
	attrs                               []string
}

func newDevicesCommand(s *session) *cobra.Command {
	q := &deviceQuery{}
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List devices by when they were last seen or enrolled, and by attribute",
		Long: `List devices by when they were last seen or enrolled, and by attribute.

A connected device (one holding its stream) is seen now. Durations take s, m,
h and d: --not-seen 7d lists devices not seen for a week, or never.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listDevices(cmd, s, q, time.Now())
		},
	}
	cmd.Flags().StringVarP(&q.selector, "selector", "l", "", "Label selector.")
	cmd.Flags().StringVar(&q.notSeen, "not-seen", "", "Only devices not seen for this long, or never.")
	cmd.Flags().StringVar(&q.seenWithin, "seen-within", "", "Only devices seen within this long.")
	cmd.Flags().StringVar(&q.enrolledWithin, "enrolled-within", "", "Only devices enrolled within this long.")
	cmd.Flags().StringArrayVar(&q.attrs, "attr", nil, "Only devices whose custom attribute KEY is VALUE (KEY=VALUE; repeatable).")
	cmd.Flags().StringVarP(&q.output, "output", "o", "", "json, yaml, name or wide.")
	return cmd
}

func listDevices(cmd *cobra.Command, s *session, q *deviceQuery, now time.Time) error {
	if err := checkOutput(q.output, "json", "yaml", "name", "wide"); err != nil {
		return err
	}
	opts := []client.ListOption{client.InNamespace(s.namespace)}
	if q.selector != "" {
		sel, err := labels.Parse(q.selector)
		if err != nil {
			return fmt.Errorf("-l %q: %w", q.selector, err)
		}
		opts = append(opts, client.MatchingLabelsSelector{Selector: sel})
	}
	var filters []func(*mdmv1alpha1.Device) bool
	for flag, v := range map[string]string{"not-seen": q.notSeen, "seen-within": q.seenWithin, "enrolled-within": q.enrolledWithin} {
		if v == "" {
			continue
		}
		d, err := parseDuration(v)
		if err != nil {
			return fmt.Errorf("--%s %q: %w", flag, v, err)
		}
		since := now.Add(-d)
		switch flag {
		case "not-seen":
			filters = append(filters, func(x *mdmv1alpha1.Device) bool { return !seenSince(x, since) })
		case "seen-within":
			filters = append(filters, func(x *mdmv1alpha1.Device) bool { return seenSince(x, since) })
		case "enrolled-within":
			filters = append(filters, func(x *mdmv1alpha1.Device) bool {
				return x.Status.EnrolledAt != nil && !x.Status.EnrolledAt.Time.Before(since)
			})
		}
	}
	for _, kv := range q.attrs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--attr %q: use KEY=VALUE", kv)
		}
		filters = append(filters, func(x *mdmv1alpha1.Device) bool { return x.Spec.Attributes[k] == v })
	}
	list := &mdmv1alpha1.DeviceList{}
	if err := s.client.List(cmd.Context(), list, opts...); err != nil {
		return err
	}
	matched := list.Items[:0]
next:
	for _, d := range list.Items {
		for _, keep := range filters {
			if !keep(&d) {
				continue next
			}
		}
		matched = append(matched, d)
	}
	list.Items = matched
	if q.output == "json" || q.output == "yaml" {
		return printObject(cmd.OutOrStdout(), s, list, q.output)
	}
	if len(list.Items) == 0 && q.output != "name" {
		// As kubectl says it: on stderr, so that stdout stays a table.
		_, err := fmt.Fprintf(cmd.ErrOrStderr(), "No resources found in %s namespace.\n", s.namespace)
		return err
	}
	return printDevices(cmd.OutOrStdout(), list, q.output, now)
}

// seenSince: the agent holds its stream, or was last seen at or after t.
func seenSince(d *mdmv1alpha1.Device, t time.Time) bool {
	if conditions.IsTrue(d, mdmv1alpha1.DeviceConditionConnected) {
		return true
	}
	return d.Status.LastSeen != nil && !d.Status.LastSeen.Time.Before(t)
}

// parseDuration reads a Go duration, or a number of days ("7d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("not a number of days")
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("not a duration such as 90m, 12h or 7d")
	}
	return d, nil
}

func printDevices(out io.Writer, list *mdmv1alpha1.DeviceList, format string, now time.Time) error {
	// The format was checked before the list was read.
	if format == "name" {
		for _, d := range list.Items {
			fmt.Fprintf(out, "device.mdm.kubemdm.io/%s\n", d.Name)
		}
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
	header := "NAME\tPLATFORM\tPHASE\tCONNECTED\tLAST SEEN\tENROLLED"
	if format == "wide" {
		header += "\tSERIAL\tOWNER\tOS"
	}
	fmt.Fprintln(w, header)
	for _, d := range list.Items {
		connected := "False"
		if conditions.IsTrue(&d, mdmv1alpha1.DeviceConditionConnected) {
			connected = "True"
		}
		lastSeen, enrolled := "<never>", "<never>"
		if d.Status.LastSeen != nil {
			lastSeen = ago(now, d.Status.LastSeen.Time)
		}
		if d.Status.EnrolledAt != nil {
			enrolled = ago(now, d.Status.EnrolledAt.Time)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s", d.Name, d.Spec.Platform, d.Status.Phase, connected, lastSeen, enrolled)
		if format == "wide" {
			os := ""
			if d.Status.DeviceInfo != nil {
				os = d.Status.DeviceInfo.OSVersion
			}
			fmt.Fprintf(w, "\t%s\t%s\t%s", d.Spec.SerialNumber, d.Spec.Owner, os)
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}

// ago is a time as kubectl shows ages: 45s, 12m, 3h, 9d.
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 3*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
