package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// checkOutput refuses an -o format the command does not print, before it
// changes anything.
func checkOutput(format string, allowed ...string) error {
	if format == "" || slices.Contains(allowed, format) {
		return nil
	}
	return fmt.Errorf("-o %q: use %s", format, orList(allowed))
}

// orList is "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// printData writes a value that is not an object (a device's attributes)
// as json or yaml.
func printData(out io.Writer, v any, format string) error {
	var b []byte
	var err error
	switch format {
	case "json":
		b, err = json.MarshalIndent(v, "", "    ")
		b = append(b, '\n')
	case "yaml":
		b, err = yaml.Marshal(v)
	default:
		return fmt.Errorf("-o %q: use json or yaml", format)
	}
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}

// printObject writes obj as json, yaml (with its apiVersion and kind, so
// it can be applied again) or kubectl's resource/name.
func printObject(out io.Writer, s *session, obj runtime.Object, format string) error {
	if err := setKinds(s, obj); err != nil {
		return err
	}
	switch format {
	case "name":
		m, err := meta.Accessor(obj)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s.%s/%s\n", strings.ToLower(obj.GetObjectKind().GroupVersionKind().Kind), mdmv1alpha1.GroupVersion.Group, m.GetName())
		return err
	case "json", "yaml":
		return printData(out, obj, format)
	}
	return fmt.Errorf("-o %q: use json, yaml or name", format)
}

// setKinds fills in apiVersion and kind, which the typed client leaves
// empty, on an object and on a list's items.
func setKinds(s *session, obj runtime.Object) error {
	gvk, err := apiutil.GVKForObject(obj, s.client.Scheme())
	if err != nil {
		return err
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	if list, ok := obj.(*mdmv1alpha1.DeviceList); ok {
		for i := range list.Items {
			list.Items[i].SetGroupVersionKind(mdmv1alpha1.GroupVersion.WithKind("Device"))
		}
	}
	return nil
}
