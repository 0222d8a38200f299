package tenants

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

func TestParseKeyring(t *testing.T) {
	a, b := masterKey(), masterKey()
	tests := []struct {
		name                  string
		single, multi, active string
		wantActive            string
	}{
		{"single", a, "", "", "k1"},
		{"single naming k1", a, "", "k1", "k1"},
		{"single with spaces", " " + a + "\n", "", "", "k1"},
		{"one of many", "", "old:" + a + ", new:" + b, "new", "new"},
		{"only one listed", "", "2024-06:" + a, "", "2024-06"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKeyring(tt.single, tt.multi, tt.active)
			if err != nil {
				t.Fatal(err)
			}
			if k.ActiveKID() != tt.wantActive {
				t.Errorf("active %q, want %q", k.ActiveKID(), tt.wantActive)
			}
		})
	}
}

// Errors name the variable and the expected shape, never key material
// (SEC-2, SEC-3).
func TestParseKeyring_Errors(t *testing.T) {
	a := masterKey()
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 16))
	tests := []struct {
		name                  string
		single, multi, active string
		mention               string
	}{
		{"nothing", "", "", "", "HERALD_MASTER_KEY"},
		{"both", a, "k1:" + a, "", "not both"},
		{"not base64", "not base64!", "", "", "HERALD_MASTER_KEY must be base64 of exactly 32 bytes"},
		{"16 bytes", short, "", "", "exactly 32 bytes"},
		{"unpadded", strings.TrimRight(a, "="), "", "", "HERALD_MASTER_KEY must be base64"},
		{"single, other active", a, "", "k2", "HERALD_MASTER_KEY_ACTIVE must be k1"},
		{"bare key in the list", "", a, "", "HERALD_MASTER_KEYS entry 1 must be kid:base64"},
		{"empty entry", "", "k1:" + a + ",", "k1", "entry 2"},
		{"bad kid", "", "k 1:" + a, "", "entry 1"},
		{"long kid", "", strings.Repeat("k", 33) + ":" + a, "", "entry 1"},
		{"short key in the list", "", "k1:" + short, "", `kid "k1" must be base64 of exactly 32 bytes`},
		{"kid twice", "", "k1:" + a + ",k1:" + masterKey(), "k1", `kid "k1" twice`},
		{"several, no active", "", "k1:" + a + ",k2:" + masterKey(), "", "HERALD_MASTER_KEY_ACTIVE must name"},
		{"active not listed", "", "k1:" + a, "k9", `names kid "k9"`},
		{"a key as the active kid", "", "k1:" + a, a, "HERALD_MASTER_KEY_ACTIVE must be a kid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKeyring(tt.single, tt.multi, tt.active)
			if err == nil {
				t.Fatalf("accepted: %v", k)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			for _, key := range []string{a, short, a[:12], short[:12], "not base64"} {
				if strings.Contains(err.Error(), key) {
					t.Errorf("error reveals key material: %v", err)
				}
			}
		})
	}
}

func TestKeyring_SealOpen(t *testing.T) {
	k := testKeyring(t)
	secret := NewSecret(canary)
	kid, ct := k.Seal("1", "k1", secret)
	if kid != "k1" {
		t.Errorf("kid %q", kid)
	}
	if bytes.Contains(ct, []byte(canary)) || len(ct) != 12+len(canary)+16 {
		t.Errorf("ciphertext of %d bytes, want nonce + sealed secret + tag and no plaintext", len(ct))
	}
	got, err := k.Open(kid, "1", "k1", ct)
	if err != nil || got.Reveal() != canary {
		t.Fatalf("Open = %q, %v", got.Reveal(), err)
	}
	if _, again := k.Seal("1", "k1", secret); bytes.Equal(ct, again) {
		t.Error("two seals of one secret are equal: the nonce is not random")
	}
}

// A ciphertext opens only for the app and key it was sealed for (SEC-1).
func TestKeyring_SEC1_BoundToAppAndKey(t *testing.T) {
	k := testKeyring(t)
	kid, ct := k.Seal("1", "k1", NewSecret(canary))
	for _, tt := range []struct{ app, key string }{
		{"2", "k1"},  // another app
		{"1", "k2"},  // another key of the app
		{"1|k", "1"}, // the AAD separator cannot be shifted
		{"11", "k1"}, // a longer id
		{"1", "k1\x00"},
	} {
		if s, err := k.Open(kid, tt.app, tt.key, ct); err == nil {
			t.Errorf("opened for app %q key %q: %q", tt.app, tt.key, s.Reveal())
		} else if strings.Contains(err.Error(), canary) {
			t.Errorf("error reveals the secret: %v", err)
		}
	}
	tampered := bytes.Clone(ct)
	tampered[len(tampered)-1] ^= 1
	if _, err := k.Open(kid, "1", "k1", tampered); err == nil {
		t.Error("a tampered ciphertext opened")
	}
	if _, err := k.Open(kid, "1", "k1", ct[:5]); err == nil {
		t.Error("a truncated ciphertext opened")
	}
	// Another master key cannot open it, even under the same kid.
	if _, err := testKeyring(t).Open(kid, "1", "k1", ct); err == nil {
		t.Error("another master key opened the ciphertext")
	}
}

func TestKeyring_MissingKIDNamesIt(t *testing.T) {
	key := masterKey()
	k, err := ParseKeyring("", "k2:"+key, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = k.Open("k1", "1", "k1", []byte("whatever"))
	if err == nil || !strings.Contains(err.Error(), `"k1"`) {
		t.Fatalf("Open under a missing kid = %v, want an error naming k1", err)
	}
	if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), key[:12]) {
		t.Errorf("error reveals key material: %v", err)
	}
}

func TestKeyring_PrintsNoKeyMaterial(t *testing.T) {
	raw := bytes.Repeat([]byte{0xAB}, 32)
	k, err := ParseKeyring(base64.StdEncoding.EncodeToString(raw), "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(verb, k)
		if strings.Contains(strings.ToLower(out), "abab") || strings.Contains(out, "\xab\xab") || strings.Contains(out, "q6ur") {
			t.Errorf("Sprintf(%s) shows key material: %s", verb, out)
		}
		if !strings.Contains(out, "active k1") {
			t.Errorf("Sprintf(%s) = %q, want the active kid", verb, out)
		}
	}
}
