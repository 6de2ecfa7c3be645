package enrollment

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRecordVerify(t *testing.T) {
	ca, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 4, 8, 0, 0, 500, time.UTC)
	rec := Record{Token: "fleet", Key: "sha256:abc", At: at}
	signed, err := rec.Sign(ca, "ns", "linux-1")
	if err != nil {
		t.Fatal(err)
	}
	tampered := func(edit func(*Record)) string {
		var r Record
		if err := json.Unmarshal([]byte(signed), &r); err != nil {
			t.Fatal(err)
		}
		edit(&r)
		out, _ := json.Marshal(r)
		return string(out)
	}
	byOther, err := rec.Sign(other, "ns", "linux-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, value, namespace, device string
		created                        time.Time
		wantErr                        string
	}{
		{name: "as signed", value: signed, namespace: "ns", device: "linux-1", created: at.Add(time.Second)},
		{name: "another Device's name", value: signed, namespace: "ns", device: "linux-2", created: at, wantErr: "not signed"},
		{name: "another namespace", value: signed, namespace: "other", device: "linux-1", created: at, wantErr: "not signed"},
		{name: "another token", value: tampered(func(r *Record) { r.Token = "admin" }), namespace: "ns", device: "linux-1", created: at, wantErr: "not signed"},
		{name: "another key", value: tampered(func(r *Record) { r.Key = "sha256:def" }), namespace: "ns", device: "linux-1", created: at, wantErr: "not signed"},
		{name: "moved in time", value: tampered(func(r *Record) { r.At = r.At.Add(time.Hour) }), namespace: "ns", device: "linux-1", created: at, wantErr: "not signed"},
		{name: "signed by another key", value: byOther, namespace: "ns", device: "linux-1", created: at, wantErr: "not signed"},
		{name: "copied onto a Device created later", value: signed, namespace: "ns", device: "linux-1", created: at.Add(time.Hour), wantErr: "dates from"},
		{name: "not JSON", value: "enrolled", namespace: "ns", device: "linux-1", created: at, wantErr: "not a record"},
		{name: "empty", value: "", namespace: "ns", device: "linux-1", created: at, wantErr: "not a record"},
		{name: "too long", value: strings.Repeat(" ", 4096) + signed, namespace: "ns", device: "linux-1", created: at, wantErr: "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Verify(tc.value, &ca.PublicKey, tc.namespace, tc.device, tc.created)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr == "" && (got.Token != "fleet" || got.Key != "sha256:abc" || !got.At.Equal(at.Truncate(time.Second))):
				t.Fatalf("got %+v", got)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
			}
		})
	}
}

// FuzzVerify feeds arbitrary annotation values to the decoder: none may
// panic, and none but the signed one may verify.
func FuzzVerify(f *testing.F) {
	ca, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	at := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	signed, err := Record{Token: "fleet", Key: "sha256:abc", At: at}.Sign(ca, "ns", "d")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Add(`{"token":"fleet","key":"sha256:abc","at":"2026-12-04T08:00:00Z","signature":"AAAA"}`)
	f.Add(`{"at":"not a time"}`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, value string) {
		if _, err := Verify(value, &ca.PublicKey, "ns", "d", at); err == nil && value != signed {
			var a, b Record
			// Another spelling of the same signed record is fine.
			if json.Unmarshal([]byte(value), &a) != nil || json.Unmarshal([]byte(signed), &b) != nil ||
				a.Token != b.Token || a.Key != b.Key || !a.At.Equal(b.At) {
				t.Fatalf("verified a record that was not signed: %q", value)
			}
		}
	})
}
