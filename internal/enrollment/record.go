package enrollment

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// Record is an enrollment as the gateway signs it on the Device it creates
// for the agent: the token it used, the digest of its key and when. The
// signature binds it to the Device's namespace and name, and the time
// binds it to one creation of that name (see Verify).
type Record struct {
	Token string    `json:"token"`
	Key   string    `json:"key"`
	At    time.Time `json:"at"`
	// Signature is the device CA's ECDSA signature over the record and the
	// Device's namespace and name.
	Signature []byte `json:"signature"`
}

// PendingRecord is the record a Device carries while its controller has yet
// to copy it into the status: the Device has no phase and holds the
// annotation. Whether the record verifies is Verify's to say.
func PendingRecord(d *mdmv1alpha1.Device) (string, bool) {
	value, ok := d.Annotations[mdmv1alpha1.AnnotationEnrollment]
	return value, ok && d.Status.Phase == ""
}

// maxRecord bounds what Verify parses: a record is about 300 bytes.
const maxRecord = 2048

// RecordSkew is how far apart a record's time and its Device's creation
// may be. The record is signed just before the create; a record copied
// onto a Device created later under the same name is refused.
const RecordSkew = time.Minute

// message is what the signature covers.
func (r *Record) message(namespace, name string) []byte {
	sum := sha256.Sum256([]byte(strings.Join([]string{"kubemdm enrollment v1", namespace, name, r.Token, r.Key,
		r.At.UTC().Format(time.RFC3339Nano)}, "\n")))
	return sum[:]
}

// Sign signs the record for the Device namespace/name and returns the
// annotation value.
func (r Record) Sign(signer crypto.Signer, namespace, name string) (string, error) {
	r.At = r.At.UTC().Truncate(time.Second)
	sig, err := signer.Sign(rand.Reader, r.message(namespace, name), crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("signing the enrollment record: %w", err)
	}
	r.Signature = sig
	out, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// Verify parses an annotation value and checks that the key of ca signed
// it for the Device namespace/name, created at created.
func Verify(value string, ca *ecdsa.PublicKey, namespace, name string, created time.Time) (Record, error) {
	var r Record
	if len(value) > maxRecord {
		return r, fmt.Errorf("the enrollment record is longer than %d bytes", maxRecord)
	}
	if err := json.Unmarshal([]byte(value), &r); err != nil {
		return Record{}, fmt.Errorf("the enrollment record is not a record: %w", err)
	}
	if ca == nil || !ecdsa.VerifyASN1(ca, r.message(namespace, name), r.Signature) {
		return Record{}, errors.New("the enrollment record is not signed by the device CA for this Device")
	}
	if d := created.Sub(r.At); d > RecordSkew || d < -RecordSkew {
		return Record{}, fmt.Errorf("the enrollment record dates from %s, but the Device was created at %s",
			r.At.Format(time.RFC3339), created.UTC().Format(time.RFC3339))
	}
	return r, nil
}
