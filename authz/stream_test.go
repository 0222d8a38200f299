package authz

import (
	"errors"
	"testing"
	"time"

	"github.com/heraldrt/herald/tenants"
)

func TestStreamToken(t *testing.T) {
	key := tenants.Key{Key: "k1", Secret: tenants.NewSecret("s1")}
	app := &tenants.App{ID: "a1", Keys: []tenants.Key{key}}
	other := &tenants.App{ID: "a2", Keys: []tenants.Key{{Key: "k2", Secret: tenants.NewSecret("s2")}}}
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(time.Hour).Unix()
	token := StreamToken(key, []string{"private-b", "private-a"}, "u1", exp)

	// The channel order does not matter; everything else does.
	if err := VerifyStreamToken(app, token, []string{"private-a", "private-b"}, "u1", exp, now); err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	bad := []struct {
		name     string
		app      *tenants.App
		token    string
		channels []string
		user     string
		exp      int64
		want     error
	}{
		{"other channel", app, token, []string{"private-a", "private-c"}, "u1", exp, ErrTokenSignature},
		{"fewer channels", app, token, []string{"private-a"}, "u1", exp, ErrTokenSignature},
		{"other user", app, token, []string{"private-a", "private-b"}, "u2", exp, ErrTokenSignature},
		{"moved expiry", app, token, []string{"private-a", "private-b"}, "u1", exp + 1, ErrTokenSignature},
		{"other app", other, token, []string{"private-a", "private-b"}, "u1", exp, ErrTokenWrongKey},
		{"malformed", app, "nonsense", []string{"private-a"}, "u1", exp, ErrTokenMalformed},
	}
	for _, tc := range bad {
		if err := VerifyStreamToken(tc.app, tc.token, tc.channels, tc.user, tc.exp, now); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := VerifyStreamToken(app, token, []string{"private-a", "private-b"}, "u1", exp, now.Add(2*time.Hour)); !errors.Is(err, ErrStreamTokenExpired) {
		t.Errorf("expired token: %v", err)
	}
	long := now.Add(48 * time.Hour).Unix()
	if err := VerifyStreamToken(app, StreamToken(key, []string{"private-a"}, "", long), []string{"private-a"}, "", long, now); !errors.Is(err, ErrStreamTokenTooLong) {
		t.Errorf("two-day token: %v", err)
	}
	// A fixed vector (computed with openssl dgst -sha256 -hmac s1), so a
	// backend in another language can check its implementation.
	if got, want := token, "k1:d53b9c3eefdae0a04eb6b6a2a818f511b8eb7f81eedff84522261489b7450ca1"; got != want {
		t.Errorf("token %s, want %s", got, want)
	}
}
