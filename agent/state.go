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
)

// State is what an agent keeps across restarts, in its state directory.
type State struct {
	dir string

	mu        sync.Mutex
	Identity  Identity                    `json:"identity"`
	Completed map[string]CompletedCommand `json:"completed"`
	// ConfigGeneration is the newest configuration applied.
	ConfigGeneration int64 `json:"configGeneration"`
}

// CompletedCommand is the recorded result of a command that ran.
type CompletedCommand struct {
	Code    int32  `json:"code"`
	Message string `json:"message,omitempty"`
}

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
)

// LoadState reads the state directory, creating it if needed.
func LoadState(dir string) (*State, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &State{dir: dir, Completed: map[string]CompletedCommand{}}
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
	return s, nil
}

// Enrolled reports whether the agent holds an identity.
func (s *State) Enrolled() bool {
	_, err := os.Stat(filepath.Join(s.dir, certFile))
	return err == nil && s.Identity.Name != ""
}

// Save writes the state atomically.
func (s *State) Save() error {
	s.mu.Lock()
	raw, err := json.Marshal(s)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(s.dir, stateFile), raw)
}

// MarkCompleted records that a command ran, so a redelivery runs it never
// again and only reports the recorded result.
func (s *State) MarkCompleted(id string, r Result) error {
	s.mu.Lock()
	s.Completed[id] = CompletedCommand{Code: r.Code, Message: r.Message}
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

// SetConfigGeneration records the newest configuration applied.
func (s *State) SetConfigGeneration(g int64) error {
	s.mu.Lock()
	s.ConfigGeneration = g
	s.mu.Unlock()
	return s.Save()
}

// NewKeyAndCSR creates a new key in the state directory (not yet active)
// and a CSR for it.
func (s *State) NewKeyAndCSR() (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
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
	if err := writeAtomic(filepath.Join(s.dir, keyFile), keyPEM); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(s.dir, certFile), certPEM); err != nil {
		return err
	}
	if len(caPEM) > 0 {
		return writeAtomic(filepath.Join(s.dir, caFile), caPEM)
	}
	return nil
}

// Certificate is the agent's client certificate.
func (s *State) Certificate() (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(s.dir, certFile), filepath.Join(s.dir, keyFile))
	if err != nil {
		return tls.Certificate{}, err
	}
	cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	return cert, err
}

// GatewayCA is the gateway CA bundle received at enrollment, if any.
func (s *State) GatewayCA() []byte {
	b, _ := os.ReadFile(filepath.Join(s.dir, caFile))
	return b
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
