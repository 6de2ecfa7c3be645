package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// State is what an agent keeps across restarts, in its state directory.
type State struct {
	dir string

	// saving serialises Save from marshalling to rename, so that an older
	// copy of the journal never replaces a newer one.
	saving sync.Mutex
	mu     sync.Mutex
	// credentials is the parsed key and certificate, read from disk again
	// only after they were replaced, here or by another process: a
	// reconnect storm would otherwise parse them for every attempt.
	credentials struct {
		sync.Mutex
		cert *tls.Certificate
		file os.FileInfo
	}
	Identity Identity `json:"identity"`
	// Gateway is the address the agent enrolled through, which a service
	// started without --gateway connects to.
	Gateway string `json:"gateway,omitempty"`
	// Started journals the commands begun and not finished: one found
	// here after a restart was interrupted (a Restart by its own reboot)
	// and is never run again.
	Started   map[string]StartedCommand   `json:"started,omitempty"`
	Completed map[string]CompletedCommand `json:"completed"`
	// ConfigGeneration is the newest configuration applied.
	ConfigGeneration int64 `json:"configGeneration"`
	// ConfigurationsDigest identifies the configurations applied.
	ConfigurationsDigest string `json:"configurationsDigest,omitempty"`
}

// CompletedCommand is the recorded result of a command that ran, or was
// canceled before it ran.
type CompletedCommand struct {
	Code    int32     `json:"code"`
	Message string    `json:"message,omitempty"`
	At      time.Time `json:"at,omitzero"`
}

// StartedCommand is a command the agent began.
type StartedCommand struct {
	Action string    `json:"action"`
	At     time.Time `json:"at"`
}

// journalRetention is how long a command's record is kept: longer than the
// longest deadline a DeviceAction may have (90 days), after which the
// gateway never sends the command again.
const journalRetention = 92 * 24 * time.Hour

// Identity names the Device the agent enrolled as.
type Identity struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
}

const (
	stateFile = "state.json"
	keyFile   = "key.pem"
	certFile  = "cert.pem"
	caFile    = "ca.pem"
	// pendingKeyFile holds the key an enrollment in progress uses.
	pendingKeyFile = "enrollment-key.pem"
)

// LoadState reads the state directory, creating it if needed.
func LoadState(dir string) (*State, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &State{dir: dir, Completed: map[string]CompletedCommand{}, Started: map[string]StartedCommand{}}
	raw, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("reading %s: %w", stateFile, err)
	}
	if s.Completed == nil {
		s.Completed = map[string]CompletedCommand{}
	}
	if s.Started == nil {
		s.Started = map[string]StartedCommand{}
	}
	return s, nil
}

// Enrolled reports whether the agent holds an identity.
func (s *State) Enrolled() bool {
	_, err := os.Stat(filepath.Join(s.dir, certFile))
	return err == nil && s.Identity.Name != ""
}

// Save writes the state atomically.
func (s *State) Save() error {
	s.saving.Lock()
	defer s.saving.Unlock()
	s.mu.Lock()
	raw, err := json.Marshal(s)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(s.dir, stateFile), raw)
}

// MarkStarted journals that a command is about to run, durably, so that
// an agent that stops while running it (a Restart reboots the host) never
// runs it again.
func (s *State) MarkStarted(id, action string) error {
	s.mu.Lock()
	s.Started[id] = StartedCommand{Action: action, At: time.Now()}
	s.mu.Unlock()
	return s.Save()
}

// StartedOnly returns a command that began and never finished.
func (s *State) StartedOnly(id string) (StartedCommand, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.Started[id]
	return c, ok
}

// MarkCompleted records a command's result, so a redelivery runs it never
// again and only reports the recorded result. Records older than any
// deadline are dropped.
func (s *State) MarkCompleted(id string, r Result) error {
	now := time.Now()
	s.mu.Lock()
	delete(s.Started, id)
	s.Completed[id] = CompletedCommand{Code: r.Code, Message: r.Message, At: now}
	for k, c := range s.Completed {
		if !c.At.IsZero() && now.Sub(c.At) > journalRetention {
			delete(s.Completed, k)
		}
	}
	s.mu.Unlock()
	return s.Save()
}

// Completion returns the recorded result of a command that already ran.
func (s *State) Completion(id string) (CompletedCommand, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.Completed[id]
	return c, ok
}

// AppliedGeneration is the newest configuration applied.
func (s *State) AppliedGeneration() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ConfigGeneration
}

// SetConfigGeneration records the newest configuration applied: the
// Device's generation and the digest of its configurations.
func (s *State) SetConfigGeneration(g int64, digest string) error {
	s.mu.Lock()
	s.ConfigGeneration, s.ConfigurationsDigest = g, digest
	s.mu.Unlock()
	return s.Save()
}

// AppliedDigest is the digest of the configurations applied.
func (s *State) AppliedDigest() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ConfigurationsDigest
}

// NewKeyAndCSR creates a new key (not yet active) and a CSR for it.
func (s *State) NewKeyAndCSR() (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	return keyAndCSR(key)
}

// EnrollmentKeyAndCSR is the key to enroll with and a CSR for it. The key is
// kept in the state directory until enrollment succeeds, so that a retry
// after a lost answer presents the same key, which the gateway recognises.
func (s *State) EnrollmentKeyAndCSR() (keyPEM, csrPEM []byte, err error) {
	path := filepath.Join(s.dir, pendingKeyFile)
	if raw, err := os.ReadFile(path); err == nil {
		if block, _ := pem.Decode(raw); block != nil {
			if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
				if key, ok := k.(*ecdsa.PrivateKey); ok {
					return keyAndCSR(key)
				}
			}
		}
	}
	keyPEM, csrPEM, err = s.NewKeyAndCSR()
	if err != nil {
		return nil, nil, err
	}
	return keyPEM, csrPEM, writeAtomic(path, keyPEM)
}

func keyAndCSR(key *ecdsa.PrivateKey) (keyPEM, csrPEM []byte, err error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "kubemdm agent"}}, key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), nil
}

// StoreCredentials makes a key and certificate the agent's identity.
func (s *State) StoreCredentials(keyPEM, certPEM, caPEM []byte) error {
	defer s.forgetCredentials()
	if err := writeAtomic(filepath.Join(s.dir, keyFile), keyPEM); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(s.dir, certFile), certPEM); err != nil {
		return err
	}
	if len(caPEM) > 0 {
		if err := writeAtomic(filepath.Join(s.dir, caFile), caPEM); err != nil {
			return err
		}
	}
	return nil
}

// ForgetEnrollmentKey drops the key of an enrollment once the identity it
// earned is saved; a later enrollment starts from a new key.
func (s *State) ForgetEnrollmentKey() error {
	if err := os.Remove(filepath.Join(s.dir, pendingKeyFile)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// Certificate is the agent's client certificate.
func (s *State) Certificate() (tls.Certificate, error) {
	s.credentials.Lock()
	defer s.credentials.Unlock()
	file, err := os.Stat(filepath.Join(s.dir, certFile))
	if err != nil {
		return tls.Certificate{}, err
	}
	if was := s.credentials.file; s.credentials.cert != nil && was != nil &&
		file.ModTime().Equal(was.ModTime()) && file.Size() == was.Size() && os.SameFile(file, was) {
		return *s.credentials.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(s.dir, certFile), filepath.Join(s.dir, keyFile))
	if err != nil {
		return tls.Certificate{}, err
	}
	if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
		return tls.Certificate{}, err
	}
	s.credentials.cert, s.credentials.file = &cert, file
	return cert, nil
}

// forgetCredentials drops the parsed key and certificate after the files
// changed.
func (s *State) forgetCredentials() {
	s.credentials.Lock()
	defer s.credentials.Unlock()
	s.credentials.cert, s.credentials.file = nil, nil
}

// GatewayCA is the gateway CA bundle received at enrollment, if any.
func (s *State) GatewayCA() []byte {
	b, _ := os.ReadFile(filepath.Join(s.dir, caFile))
	return b
}

// writeAtomic replaces path with data, durably: the journal must survive
// the reboot a Restart command causes right after it is written.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Forget removes the agent's identity (key, certificate, CA and state) once
// the gateway no longer manages the device, so that it can enroll again and
// a service that starts only when enrolled stays stopped.
func (s *State) Forget() error {
	defer s.forgetCredentials()
	var errs []error
	for _, f := range []string{certFile, keyFile, caFile, stateFile, pendingKeyFile} {
		if err := os.Remove(filepath.Join(s.dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	s.Identity, s.Gateway = Identity{}, ""
	s.mu.Unlock()
	return errors.Join(errs...)
}
