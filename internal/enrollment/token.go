// Package enrollment holds what an enrollment token is made of: its secret
// value, the hash the gateway matches, and the provisioning payload and QR
// code that carry it to a device.
package enrollment

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// TokenPrefix marks token values so that secret scanners can recognise a
// leaked one.
const TokenPrefix = "kmdm_et_"

// NewToken returns a fresh token value with 256 bits of entropy.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// Hash returns the hex SHA-256 of a token value. Only the hash is stored
// outside the token's Secret.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Matches compares a presented token with a stored hash in constant time.
func Matches(token, hash string) bool {
	return subtle.ConstantTimeCompare([]byte(Hash(token)), []byte(strings.ToLower(hash))) == 1
}

// WellFormed reports whether a presented value can be a token at all, so that
// obviously wrong input is refused before any lookup.
func WellFormed(token string) bool {
	if !strings.HasPrefix(token, TokenPrefix) {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(token, TokenPrefix))
	return err == nil && len(raw) == 32
}
