package authz

import (
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

const testPassword = "correct horse battery staple"

// phcForm is the exact shape of a new hash: default parameters, a 16-byte
// salt and a 32-byte key in unpadded base64.
var phcForm = regexp.MustCompile(`^\$argon2id\$v=19\$m=65536,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashPassword_RoundTrip(t *testing.T) {
	hash, err := HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !phcForm.MatchString(hash) {
		t.Errorf("hash %q is not in the expected PHC form", hash)
	}
	if strings.Contains(hash, testPassword) {
		t.Errorf("hash %q contains the password", hash)
	}
	if !CheckPassword(hash, testPassword) {
		t.Error("CheckPassword refused the right password")
	}
	for _, wrong := range []string{"", "Correct horse battery staple", testPassword + " ", testPassword[:len(testPassword)-1], "wrong password!"} {
		if CheckPassword(hash, wrong) {
			t.Errorf("CheckPassword accepted %q", wrong)
		}
	}
}

func TestHashPassword_SaltsDiffer(t *testing.T) {
	a, err := HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	b, err := HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	saltOf := func(h string) string { return strings.Split(h, "$")[4] }
	if a == b || saltOf(a) == saltOf(b) {
		t.Errorf("two hashes of one password share a salt: %q and %q", a, b)
	}
	if !CheckPassword(a, testPassword) || !CheckPassword(b, testPassword) {
		t.Error("a salted hash does not check")
	}
}

func TestHashPassword_LengthBounds(t *testing.T) {
	for _, tc := range []struct {
		password string
		wantErr  string // "" when the password is accepted
	}{
		{"", "at least 10 bytes"},
		{strings.Repeat("p", 9), "at least 10 bytes"},
		{strings.Repeat("p", 10), ""},
		{strings.Repeat("p", 1024), ""},
		{strings.Repeat("p", 1025), "at most 1024 bytes"},
	} {
		hash, err := HashPassword(tc.password)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("HashPassword(%d bytes): %v", len(tc.password), err)
		case tc.wantErr == "" && !CheckPassword(hash, tc.password):
			t.Errorf("HashPassword(%d bytes) does not check", len(tc.password))
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || hash != ""):
			t.Errorf("HashPassword(%d bytes) = %q, %v; want an error saying %q", len(tc.password), hash, err, tc.wantErr)
		}
	}
}

// cheapHash is a hash of password with the given parameters, made without
// HashPassword so that tests can use parameters it never writes.
func cheapHash(password string, memory, time uint32, threads uint8, keyLen uint32) string {
	salt := []byte("0123456789abcdef")
	p := hashParams{memory: memory, time: time, threads: threads, salt: salt}
	return p.format(argon2.IDKey([]byte(password), salt, time, memory, threads, keyLen))
}

// Parameters, salt and key length come from the hash, within the bounds.
func TestCheckPassword_ReadsParameters(t *testing.T) {
	for _, h := range []string{
		cheapHash(testPassword, 8, 1, 1, 32),
		cheapHash(testPassword, 128, 10, 16, 32), // t and p at their bounds
		cheapHash(testPassword, 64, 3, 2, 16),    // shortest key
		cheapHash(testPassword, 64, 1, 1, 64),    // longest key
	} {
		if !CheckPassword(h, testPassword) {
			t.Errorf("CheckPassword(%s) refused the right password", h)
		}
		if CheckPassword(h, "not the password") {
			t.Errorf("CheckPassword(%s) accepted a wrong password", h)
		}
	}
}

// Malformed hashes and hashes whose parameters exceed the bounds never
// match, and never panic or run a costly derivation.
func TestCheckPassword_MalformedAndForged(t *testing.T) {
	valid := cheapHash(testPassword, 8, 1, 1, 32)
	if !CheckPassword(valid, testPassword) {
		t.Fatal("the base hash does not check")
	}
	f := strings.Split(valid, "$")
	salt, key := f[4], f[5]
	with := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + key }
	for _, h := range []string{
		"",
		"$",
		testPassword,
		"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", // bcrypt
		strings.TrimPrefix(valid, "$"),
		valid + "$",
		valid + "$extra",
		strings.Replace(valid, "argon2id", "argon2i", 1),
		strings.Replace(valid, "argon2id", "ARGON2ID", 1),
		strings.Replace(valid, "v=19", "v=16", 1),
		strings.Replace(valid, "v=19$", "", 1),
		// Parameters beyond the bounds: 256 MiB + 1 KiB, 11 passes, 17 lanes.
		with("m=262145,t=1,p=1"),
		with("m=4294967295,t=1,p=1"),
		with("m=99999999999999999999,t=1,p=1"),
		with("m=8,t=11,p=1"),
		with("m=8,t=4294967296,p=1"),
		with("m=256,t=1,p=17"),
		with("m=256,t=1,p=255"),
		// Zero or too little work, which Argon2 does not define.
		with("m=8,t=0,p=1"),
		with("m=8,t=1,p=0"),
		with("m=7,t=1,p=1"),
		with("m=8,t=1,p=2"),
		// Other spellings of valid parameters.
		with("m=08,t=1,p=1"),
		with("m=+8,t=1,p=1"),
		with("m= 8,t=1,p=1"),
		with("m=8, t=1,p=1"),
		with("t=1,m=8,p=1"),
		with("m=8,t=1"),
		with("m=8,t=1,p=1,x=1"),
		with("m=8,t=1,p=1,"),
		with("M=8,t=1,p=1"),
		with("m=-8,t=1,p=1"),
		// Salt and key.
		"$argon2id$v=19$m=8,t=1,p=1$" + salt + "$",
		"$argon2id$v=19$m=8,t=1,p=1$$" + key,
		"$argon2id$v=19$m=8,t=1,p=1$" + salt + "==$" + key,
		"$argon2id$v=19$m=8,t=1,p=1$" + salt + "$" + key + "=",
		"$argon2id$v=19$m=8,t=1,p=1$!!!!$" + key,
		"$argon2id$v=19$m=8,t=1,p=1$" + salt + "$" + key[:len(key)-1] + "*",
		"$argon2id$v=19$m=8,t=1,p=1$" + salt[:len(salt)-1] + "B$" + key, // non-zero padding bits
		"$argon2id$v=19$m=8,t=1,p=1$c2FsdA$" + key,                      // 4-byte salt
		"$argon2id$v=19$m=8,t=1,p=1$" + strings.Repeat("A", 88) + "$" + key,
		"$argon2id$v=19$m=8,t=1,p=1$" + salt + "$" + key[:11], // 8-byte key
		cheapHash(testPassword, 8, 1, 1, 65),
	} {
		if CheckPassword(h, testPassword) {
			t.Errorf("CheckPassword(%q) = true, want false", h)
		}
	}
	// A password longer than any HashPassword accepts never matches.
	long := strings.Repeat("p", maxPasswordBytes+1)
	if CheckPassword(cheapHash(long, 8, 1, 1, 32), long) {
		t.Error("CheckPassword accepted an over-long password")
	}
}

// DummyCheck costs what a check of a real account costs because its hash
// has the parameters HashPassword writes; it matches nothing.
func TestDummyCheck(t *testing.T) {
	p, key, ok := parseHash(dummyHash)
	if !ok || p.memory != hashMemoryKiB || p.time != hashTime || p.threads != hashThreads ||
		len(p.salt) != hashSaltBytes || len(key) != hashKeyBytes {
		t.Fatalf("dummyHash %q does not have the parameters of new hashes", dummyHash)
	}
	if !phcForm.MatchString(dummyHash) {
		t.Errorf("dummyHash %q is not in the form of new hashes", dummyHash)
	}
	DummyCheck(testPassword)
	DummyCheck("")
	if CheckPassword(dummyHash, testPassword) {
		t.Error("the dummy hash matched a password")
	}
}
