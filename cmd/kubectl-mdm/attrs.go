package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// newAttrsCommand is the source API's four custom-attribute operations,
// each one patch of spec.attributes by the kubectl-mdm field manager, so
// that a person's change and Git's ownership of other fields stay apart.
func newAttrsCommand(s *session) *cobra.Command {
	cmd := &cobra.Command{Use: "attrs", Short: "Read and change a device's custom attributes (spec.attributes)"}
	device := func(cmd *cobra.Command, name string) (*mdmv1alpha1.Device, error) {
		d := &mdmv1alpha1.Device{}
		return d, s.client.Get(cmd.Context(), client.ObjectKey{Namespace: s.namespace, Name: name}, d)
	}
	patch := func(cmd *cobra.Command, name string, pt types.PatchType, body any) error {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		d := &mdmv1alpha1.Device{}
		d.Namespace, d.Name = s.namespace, name
		if err := s.client.Patch(cmd.Context(), d, client.RawPatch(pt, raw), client.FieldOwner(fieldManager)); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "device.mdm.kubemdm.io/%s patched\n", name)
		return nil
	}
	var output string
	get := &cobra.Command{
		Use:   "get DEVICE",
		Short: "Print the attributes, KEY=VALUE, sorted; or -o json|yaml",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "json", "yaml"); err != nil {
				return err
			}
			d, err := device(cmd, args[0])
			if err != nil {
				return err
			}
			if output != "" {
				attrs := d.Spec.Attributes
				if attrs == nil {
					// An empty object, not null: a script reads a map.
					attrs = map[string]string{}
				}
				return printData(cmd.OutOrStdout(), attrs, output)
			}
			keys := make([]string, 0, len(d.Spec.Attributes))
			for k := range d.Spec.Attributes {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				fmt.Fprintf(cmd.OutOrStdout(), "%s=%s\n", k, d.Spec.Attributes[k])
			}
			return nil
		},
	}
	replace := &cobra.Command{
		Use:   "replace DEVICE KEY=VALUE...",
		Short: "Set the attributes to exactly these (none: remove them all)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			attrs, err := pairs(args[1:])
			if err != nil {
				return err
			}
			return patch(cmd, args[0], types.JSONPatchType, []map[string]any{{"op": "add", "path": "/spec/attributes", "value": attrs}})
		},
	}
	merge := &cobra.Command{
		Use:   "patch DEVICE KEY=VALUE...",
		Short: "Set these attributes, keeping the others",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			attrs, err := pairs(args[1:])
			if err != nil {
				return err
			}
			return patch(cmd, args[0], types.MergePatchType, map[string]any{"spec": map[string]any{"attributes": attrs}})
		},
	}
	remove := &cobra.Command{
		Use:   "remove DEVICE KEY...",
		Short: "Remove these attributes",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			gone := map[string]any{}
			for _, k := range args[1:] {
				gone[k] = nil
			}
			return patch(cmd, args[0], types.MergePatchType, map[string]any{"spec": map[string]any{"attributes": gone}})
		},
	}
	get.Flags().StringVarP(&output, "output", "o", "", "json or yaml: the attributes as one object.")
	cmd.AddCommand(get, replace, merge, remove)
	return cmd
}

// pairs reads KEY=VALUE arguments.
func pairs(args []string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: use KEY=VALUE", a)
		}
		out[k] = v
	}
	return out, nil
}
