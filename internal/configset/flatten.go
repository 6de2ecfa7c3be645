package configset

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// How each field of spec.settings splits into settings that merge on their
// own: an object by field (passcode.minLength), a list by its key
// (wifi[SSID]), anything else whole (systemUpdate).
var (
	splitByField = map[string]bool{"passcode": true, "restrictions": true}
	splitByKey   = map[string]string{
		"wifi": "ssid", "certificates": "name", "apps": "id",
		"files": "path", "systemdUnits": "name", "packages": "name",
	}
)

// setting is one mergeable setting: its path and its value as JSON.
type setting struct {
	field string // top-level field of spec.settings
	sub   string // object field or list key; empty for a whole field
	value json.RawMessage
}

func (s setting) path() string {
	switch {
	case s.sub == "":
		return s.field
	case splitByField[s.field]:
		return s.field + "." + s.sub
	default:
		return s.field + "[" + s.sub + "]"
	}
}

// flatten splits settings into their mergeable settings, keyed by path.
func flatten(settings *mdmv1alpha1.ConfigurationSettings) (map[string]setting, error) {
	raw, err := json.Marshal(settings)
	if err != nil {
		return nil, fmt.Errorf("encoding settings: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("decoding settings: %w", err)
	}
	out := map[string]setting{}
	add := func(s setting) { out[s.path()] = s }
	for field, value := range fields {
		switch key := splitByKey[field]; {
		case splitByField[field]:
			var parts map[string]json.RawMessage
			if err := json.Unmarshal(value, &parts); err != nil {
				return nil, fmt.Errorf("decoding %s: %w", field, err)
			}
			for sub, v := range parts {
				add(setting{field: field, sub: sub, value: v})
			}
		case key != "":
			var items []map[string]json.RawMessage
			if err := json.Unmarshal(value, &items); err != nil {
				return nil, fmt.Errorf("decoding %s: %w", field, err)
			}
			for _, item := range items {
				var id string
				if err := json.Unmarshal(item[key], &id); err != nil {
					return nil, fmt.Errorf("decoding %s.%s: %w", field, key, err)
				}
				v, err := json.Marshal(item)
				if err != nil {
					return nil, err
				}
				add(setting{field: field, sub: id, value: v})
			}
		default:
			add(setting{field: field, value: value})
		}
	}
	return out, nil
}

// unflatten puts settings back together into spec.settings' shape, lists
// sorted by their key.
func unflatten(settings []setting) (*mdmv1alpha1.ConfigurationSettings, error) {
	slices.SortFunc(settings, func(a, b setting) int { return strings.Compare(a.path(), b.path()) })
	fields := map[string]any{}
	for _, s := range settings {
		switch {
		case splitByField[s.field]:
			obj, _ := fields[s.field].(map[string]json.RawMessage)
			if obj == nil {
				obj = map[string]json.RawMessage{}
				fields[s.field] = obj
			}
			obj[s.sub] = s.value
		case splitByKey[s.field] != "":
			list, _ := fields[s.field].([]json.RawMessage)
			fields[s.field] = append(list, s.value)
		default:
			fields[s.field] = s.value
		}
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("encoding settings: %w", err)
	}
	out := &mdmv1alpha1.ConfigurationSettings{}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("decoding settings: %w", err)
	}
	return out, nil
}
