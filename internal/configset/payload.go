package configset

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// Ref is a Secret or ConfigMap key that settings carry to devices.
type Ref struct {
	// Kind is Secret or ConfigMap.
	Kind string
	Name string
	Key  string
}

func (r Ref) String() string { return fmt.Sprintf("%s %s key %s", r.Kind, r.Name, r.Key) }

// Refs lists the Secret and ConfigMap keys the settings name, sorted and
// without repeats.
func Refs(s *mdmv1alpha1.ConfigurationSettings) []Ref {
	var refs []Ref
	secret := func(r *mdmv1alpha1.SecretKeyRef) {
		if r != nil {
			refs = append(refs, Ref{Kind: "Secret", Name: r.Name, Key: r.Key})
		}
	}
	for _, w := range s.WiFi {
		secret(w.PasswordSecretRef)
	}
	for _, c := range s.Certificates {
		secret(&c.SecretRef)
	}
	for _, f := range s.Files {
		secret(f.SecretRef)
		if r := f.ConfigMapRef; r != nil {
			refs = append(refs, Ref{Kind: "ConfigMap", Name: r.Name, Key: r.Key})
		}
	}
	slices.SortFunc(refs, func(a, b Ref) int { return cmpRef(a, b) })
	return slices.Compact(refs)
}

func cmpRef(a, b Ref) int {
	for _, c := range [][2]string{{a.Kind, b.Kind}, {a.Name, b.Name}, {a.Key, b.Key}} {
		if c[0] != c[1] {
			if c[0] < c[1] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// Payloads reads the keys of the Secrets and ConfigMaps labelled
// mdm.kubemdm.io/device-payload=true in one namespace.
type Payloads interface {
	// Value is a key's content, for the device.
	Value(Ref) ([]byte, error)
	// Fingerprint is what stands for the content in a revision: it
	// changes with the content and does not give it away.
	Fingerprint(Ref) ([]byte, error)
}

// PayloadError says why a referenced key cannot be read.
type PayloadError struct {
	Ref Ref
	// NotAllowed is true when the object exists without the
	// device-payload label; otherwise the object or key is missing.
	NotAllowed bool
}

func (e *PayloadError) Error() string {
	if e.NotAllowed {
		return fmt.Sprintf("%s %s is not labelled %s=true, so it cannot be carried to devices", e.Ref.Kind, e.Ref.Name, mdmv1alpha1.LabelDevicePayload)
	}
	return fmt.Sprintf("%s does not exist", e.Ref)
}

// Revision is the content hash of a Configuration's settings and of every
// key they name, so it changes when a Secret the settings name changes.
// It fails with a *PayloadError for the first key it cannot read.
func Revision(s *mdmv1alpha1.ConfigurationSettings, payloads Payloads) (string, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("encoding settings: %w", err)
	}
	h := sha256.New()
	h.Write(raw)
	for _, ref := range Refs(s) {
		sum, err := payloads.Fingerprint(ref)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "\x00%s\x00%s\x00%s\x00%x", ref.Kind, ref.Name, ref.Key, sum)
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

// IsPayloadError reports whether err is a *PayloadError and returns it.
func IsPayloadError(err error) (*PayloadError, bool) {
	var pe *PayloadError
	ok := errors.As(err, &pe)
	return pe, ok
}
