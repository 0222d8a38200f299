package tenants

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"fmt"
	"strings"
)

// Keyring holds the master keys that encrypt app secrets at rest (security.md
// SEC-1, SEC-2). New ciphertexts use the active key; each ciphertext is
// stored with the id (kid) of its key, so that after a rotation the old
// rows still decrypt as long as the old key stays in the ring. A Keyring is
// safe for concurrent use and prints without key material.
type Keyring struct {
	active string
	aeads  map[string]cipher.AEAD // by kid
}

// ParseKeyring builds a keyring from the operator's configuration: single is
// HERALD_MASTER_KEY (base64 of exactly 32 bytes, kid "k1"); multi is
// HERALD_MASTER_KEYS ("kid:base64,kid:base64"), with active
// (HERALD_MASTER_KEY_ACTIVE) naming the kid for new ciphertexts, which may
// be omitted when multi lists a single key. Exactly one of single and multi
// must be set. Errors name the variable and the expected shape, never a key.
func ParseKeyring(single, multi, active string) (*Keyring, error) {
	single, multi, active = strings.TrimSpace(single), strings.TrimSpace(multi), strings.TrimSpace(active)
	raw := map[string][]byte{}
	switch {
	case single != "" && multi != "":
		return nil, fmt.Errorf("set HERALD_MASTER_KEY or HERALD_MASTER_KEYS, not both")
	case single != "":
		if active != "" && active != "k1" {
			return nil, fmt.Errorf("HERALD_MASTER_KEY_ACTIVE must be k1 or unset with HERALD_MASTER_KEY; name other keys with HERALD_MASTER_KEYS=kid:base64,...")
		}
		key, ok := decodeMasterKey(single)
		if !ok {
			return nil, fmt.Errorf("HERALD_MASTER_KEY must be base64 of exactly 32 bytes (for example: openssl rand -base64 32)")
		}
		raw["k1"], active = key, "k1"
	case multi != "":
		for i, entry := range strings.Split(multi, ",") {
			kid, b64, ok := strings.Cut(strings.TrimSpace(entry), ":")
			if !ok || !validKID(kid) {
				// The entry is not echoed: it may be a bare key.
				return nil, fmt.Errorf("HERALD_MASTER_KEYS entry %d must be kid:base64, the kid 1 to 32 characters of [A-Za-z0-9_-]", i+1)
			}
			if raw[kid] != nil {
				return nil, fmt.Errorf("HERALD_MASTER_KEYS lists kid %q twice", kid)
			}
			key, ok := decodeMasterKey(b64)
			if !ok {
				return nil, fmt.Errorf("HERALD_MASTER_KEYS: the key of kid %q must be base64 of exactly 32 bytes", kid)
			}
			raw[kid] = key
		}
		if active == "" {
			if len(raw) > 1 {
				return nil, fmt.Errorf("HERALD_MASTER_KEY_ACTIVE must name the kid for new secrets when HERALD_MASTER_KEYS lists several keys")
			}
			for kid := range raw {
				active = kid
			}
		}
		if !validKID(active) {
			return nil, fmt.Errorf("HERALD_MASTER_KEY_ACTIVE must be a kid of HERALD_MASTER_KEYS (1 to 32 characters of [A-Za-z0-9_-])")
		}
		if raw[active] == nil {
			return nil, fmt.Errorf("HERALD_MASTER_KEY_ACTIVE names kid %q, which HERALD_MASTER_KEYS does not list", active)
		}
	default:
		return nil, fmt.Errorf("a master key is required: set HERALD_MASTER_KEY (base64 of 32 bytes) or HERALD_MASTER_KEYS (kid:base64,...) with HERALD_MASTER_KEY_ACTIVE")
	}

	k := &Keyring{active: active, aeads: make(map[string]cipher.AEAD, len(raw))}
	for kid, key := range raw {
		block, err := aes.NewCipher(key) // copies the key into its schedule
		clear(key)
		if err != nil {
			return nil, fmt.Errorf("master key %q: %v", kid, err)
		}
		// GCM with a random 12-byte nonce, prepended to the ciphertext.
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("master key %q: %v", kid, err)
		}
		k.aeads[kid] = aead
	}
	return k, nil
}

func decodeMasterKey(s string) ([]byte, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		clear(b)
		return nil, false
	}
	return b, true
}

func validKID(kid string) bool { return len(kid) <= 32 && validKey(kid) }

// ActiveKID is the kid that Seal uses.
func (k *Keyring) ActiveKID() string { return k.active }

// Format prints the active kid only, whatever the verb, so that a Keyring in
// a log line or a %#v never shows key material.
func (k *Keyring) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "tenants.Keyring(active %s)", k.active)
}

// secretAAD binds a ciphertext to the app and key it belongs to, so that a
// ciphertext copied to another row does not decrypt.
func secretAAD(appID, key string) []byte {
	return []byte("herald/secret/v1|" + appID + "|" + key)
}

// Seal encrypts the secret of key of app appID under the active master key
// and returns that key's kid with the ciphertext (nonce, sealed secret and
// tag).
func (k *Keyring) Seal(appID, key string, secret Secret) (kid string, ciphertext []byte) {
	return k.active, k.aeads[k.active].Seal(nil, nil, []byte(secret.Reveal()), secretAAD(appID, key))
}

// Open decrypts a ciphertext made by Seal for the same app and key under the
// master key kid. It fails, naming the kid but no key material, when the
// ring lacks kid, and when the ciphertext was altered or belongs to another
// app or key.
func (k *Keyring) Open(kid, appID, key string, ciphertext []byte) (Secret, error) {
	aead, ok := k.aeads[kid]
	if !ok {
		return Secret{}, fmt.Errorf("master key %q is not configured (HERALD_MASTER_KEYS): it is needed to decrypt the secret of key %q of app %s", kid, key, appID)
	}
	plain, err := aead.Open(nil, nil, ciphertext, secretAAD(appID, key))
	if err != nil {
		return Secret{}, fmt.Errorf("the secret of key %q of app %s does not decrypt under master key %q: the ciphertext was altered or belongs to another app or key", key, appID, kid)
	}
	return NewSecret(string(plain)), nil
}
