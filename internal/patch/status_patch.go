package patch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// guardedStatus is the merge patch that sets the status fields of diff on
// the version resourceVersion, and fails on any other.
func guardedStatus(diff map[string]json.RawMessage, resourceVersion string) ([]byte, error) {
	return json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": resourceVersion},
		"status":   diff,
	})
}

// statusDiff is each status field that changed from before to after, as
// its merge patch, or nil when none did.
//
// It is cheaper than diffing the two whole objects: the status fields are
// compared as Go values, and only those that changed are marshalled. A
// thousand-row DeviceAction changes a few fields per pass; its rows, an
// atomic list, are marshalled only when they changed, and then sent whole,
// as a merge patch sends any list.
func statusDiff(before, after client.Object) (map[string]json.RawMessage, error) {
	was, now, err := statusValues(before, after)
	if err != nil {
		return nil, err
	}
	diff := map[string]json.RawMessage{}
	t := was.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			return nil, fmt.Errorf("%s embeds %s, which a status patch does not inline", t, f.Name)
		}
		name, omitEmpty := jsonName(f)
		if name == "" {
			continue
		}
		b, a := was.Field(i), now.Field(i)
		if equality.Semantic.DeepEqual(b.Interface(), a.Interface()) {
			continue
		}
		d, err := fieldDiff(b, a, omitEmpty)
		if err != nil {
			return nil, fmt.Errorf("status.%s: %w", name, err)
		}
		if d != nil {
			diff[name] = d
		}
	}
	if len(diff) == 0 {
		return nil, nil
	}
	return diff, nil
}

// statusValues are the Status structs of two objects of one kind.
func statusValues(before, after client.Object) (reflect.Value, reflect.Value, error) {
	status := func(o client.Object) (reflect.Value, error) {
		v := reflect.ValueOf(o)
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			return reflect.Value{}, fmt.Errorf("%T is not a pointer to a struct", o)
		}
		s := v.Elem().FieldByName("Status")
		if !s.IsValid() || s.Kind() != reflect.Struct {
			return reflect.Value{}, fmt.Errorf("%T has no status struct", o)
		}
		return s, nil
	}
	b, err := status(before)
	if err != nil {
		return b, b, err
	}
	a, err := status(after)
	if err != nil {
		return a, a, err
	}
	if a.Type() != b.Type() {
		return a, a, fmt.Errorf("%T and %T differ in kind", before, after)
	}
	return b, a, nil
}

// jsonName is the field's JSON member name ("" when it is not marshalled)
// and whether it is left out when empty.
func jsonName(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", false
	}
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" {
		name = f.Name
	}
	return name, strings.Contains(","+opts+",", ",omitempty,")
}

// fieldDiff is what a merge patch sends for a status field whose Go value
// changed: null when the new value is left out of the JSON, the member-wise
// diff when both values are JSON objects, and the new value otherwise; nil
// when the two marshal alike (times differing below the second, which the
// JSON does not hold), as nothing stored would change.
func fieldDiff(was, now reflect.Value, omitEmpty bool) (json.RawMessage, error) {
	if omitEmpty && emptyJSON(now) {
		if emptyJSON(was) {
			return nil, nil
		}
		return json.RawMessage("null"), nil
	}
	a, err := json.Marshal(now.Interface())
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(was.Interface())
	if err != nil {
		return nil, err
	}
	switch {
	case bytes.Equal(a, b):
		return nil, nil
	case !isObject(a):
		return a, nil
	}
	return mergeDiff(b, a)
}

// mergeDiff is the merge patch (RFC 7396) from was to now: the members of
// an object that changed, recursively, null for those removed, and any
// other value whole.
func mergeDiff(was, now json.RawMessage) (json.RawMessage, error) {
	if !isObject(was) || !isObject(now) {
		return now, nil
	}
	var before, after map[string]json.RawMessage
	if err := json.Unmarshal(was, &before); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(now, &after); err != nil {
		return nil, err
	}
	diff := map[string]json.RawMessage{}
	for k, v := range after {
		old, ok := before[k]
		switch {
		case !ok:
			diff[k] = v
		case !bytes.Equal(old, v):
			d, err := mergeDiff(old, v)
			if err != nil {
				return nil, err
			}
			diff[k] = d
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			diff[k] = json.RawMessage("null")
		}
	}
	return json.Marshal(diff)
}

// emptyJSON reports whether encoding/json leaves v out under omitempty.
func emptyJSON(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

func isObject(v json.RawMessage) bool {
	v = bytes.TrimLeft(v, " \t\r\n")
	return len(v) > 0 && v[0] == '{'
}
