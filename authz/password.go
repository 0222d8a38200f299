package authz

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Password length limits, in bytes. The upper one bounds the work an
// attacker can make a sign-in do; no real password comes near it.
const (
	minPasswordBytes = 10
	maxPasswordBytes = 1024
)

// The argon2id parameters of new hashes: 64 MiB, the memory of RFC 9106's
// second recommended option, so that guessing in bulk is costly; two passes;
// and a single lane, so that one sign-in keeps one core busy.
const (
	hashMemoryKiB = 64 * 1024
	hashTime      = 2
	hashThreads   = 1
	hashSaltBytes = 16
	hashKeyBytes  = 32
)

// Upper bounds of the parameters CheckPassword accepts from a stored hash,
// so that a forged hash cannot make a check allocate or compute without
// limit. Salt and key lengths are bounded for the same reason.
const (
	maxMemoryKiB = 256 * 1024
	maxTime      = 10
	maxThreads   = 16
	minSaltBytes = 8
	maxSaltBytes = 64
	minKeyBytes  = 16
	maxKeyBytes  = 64
)

// b64 is the PHC string format's base64: standard alphabet, no padding.
var b64 = base64.RawStdEncoding

// HashPassword returns an argon2id hash of password in PHC form:
// $argon2id$v=19$m=65536,t=2,p=1$<salt>$<key>, with a 16-byte random salt
// and a 32-byte key, both base64 without padding. Passwords must be 10 to
// 1024 bytes long; the error says which limit was broken.
func HashPassword(password string) (string, error) {
	switch {
	case len(password) < minPasswordBytes:
		return "", fmt.Errorf("a password must be at least %d bytes long", minPasswordBytes)
	case len(password) > maxPasswordBytes:
		return "", fmt.Errorf("a password must be at most %d bytes long", maxPasswordBytes)
	}
	salt := make([]byte, hashSaltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("authz: password salt: %w", err)
	}
	p := hashParams{memory: hashMemoryKiB, time: hashTime, threads: hashThreads, salt: salt}
	return p.format(argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, hashKeyBytes)), nil
}

// CheckPassword reports whether password matches hash, comparing the
// derived key in constant time. A malformed hash, or one whose parameters
// exceed the bounds (m ≤ 256 MiB, t ≤ 10, p ≤ 16), never matches.
func CheckPassword(hash, password string) bool {
	p, key, ok := parseHash(hash)
	// No password that long can have been hashed, and refusing it before
	// deriving bounds the work of one check.
	if !ok || len(password) > maxPasswordBytes {
		return false
	}
	derived := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(derived, key) == 1
}

// dummyHash has the parameters of new hashes, so that checking against it
// costs what checking a real account's password does. Its salt and key are
// zeros: no password matches it in practice, and it needs no hashing to
// build.
var dummyHash = hashParams{memory: hashMemoryKiB, time: hashTime, threads: hashThreads,
	salt: make([]byte, hashSaltBytes)}.format(make([]byte, hashKeyBytes))

// DummyCheck spends the time of one CheckPassword. Sign-in calls it for an
// unknown email, so that response times do not reveal which emails have
// accounts.
func DummyCheck(password string) {
	CheckPassword(dummyHash, password)
}

// hashParams are the argon2id parameters and salt of a hash.
type hashParams struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
	salt    []byte
}

// format returns the PHC string of key derived with p.
func (p hashParams) format(key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(p.salt), b64.EncodeToString(key))
}

// parseHash parses a PHC argon2id string strictly: exactly the fields and
// order format writes, decimal parameters within bounds, and salt and key
// of bounded length.
func parseHash(hash string) (p hashParams, key []byte, ok bool) {
	f := strings.Split(hash, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" || f[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, false
	}
	params := strings.Split(f[3], ",")
	if len(params) != 3 {
		return p, nil, false
	}
	m, okM := param(params[0], "m=", maxMemoryKiB)
	t, okT := param(params[1], "t=", maxTime)
	threads, okP := param(params[2], "p=", maxThreads)
	if !okM || !okT || !okP || t == 0 || threads == 0 || m < 8*threads {
		// Argon2 needs 8 KiB of memory per lane.
		return p, nil, false
	}
	salt, err := b64.Strict().DecodeString(f[4])
	if err != nil || len(salt) < minSaltBytes || len(salt) > maxSaltBytes {
		return p, nil, false
	}
	key, err = b64.Strict().DecodeString(f[5])
	if err != nil || len(key) < minKeyBytes || len(key) > maxKeyBytes {
		return p, nil, false
	}
	return hashParams{memory: m, time: t, threads: uint8(threads), salt: salt}, key, true
}

// param parses "<name><decimal>" with a value of at most limit. Only digits
// are accepted: no sign, blank or leading zero, so each hash has one
// spelling.
func param(s, name string, limit uint32) (uint32, bool) {
	digits, ok := strings.CutPrefix(s, name)
	if !ok || digits == "" || len(digits) > 1 && digits[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || v > uint64(limit) {
		return 0, false
	}
	return uint32(v), true
}
