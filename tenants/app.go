package tenants

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors returned by stores, wrapped with %w where detail helps.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

// Key is one key/secret pair of an app. An app may hold several so that a
// secret can be rotated with overlap.
type Key struct {
	Key    string `json:"key"`
	Secret Secret `json:"secret"`
}

// App is one tenant application.
type App struct {
	ID       string   `json:"id"`
	TenantID string   `json:"tenant_id"`
	Name     string   `json:"name"`
	Enabled  bool     `json:"enabled"`
	Keys     []Key    `json:"-"` // active keys; listed through Store.Keys
	Settings Settings `json:"settings"`
	// Suspended is set by stores when the owning tenant is suspended.
	Suspended bool `json:"suspended,omitempty"`
	// Plan is set by stores to the owning tenant's plan; the plan bounds
	// the app's limits.
	Plan string `json:"plan,omitempty"`
}

// Active reports whether the app may serve: it is enabled and its tenant
// is not suspended.
func (a *App) Active() bool { return a.Enabled && !a.Suspended }

// SecretFor returns the secret of key if key belongs to the app.
func (a *App) SecretFor(key string) (Secret, bool) {
	for _, k := range a.Keys {
		if k.Key == key {
			return k.Secret, true
		}
	}
	return Secret{}, false
}

// PrimaryKey is the app's first key: the one shown in examples.
func (a *App) PrimaryKey() Key { return a.Keys[0] }

// Validate checks the app and fills its settings' defaults. Errors name the
// offending field.
func (a *App) Validate() error {
	if !validAppID(a.ID) {
		return fmt.Errorf("%w: id %q must be 1 to 32 characters of [0-9a-z], and not \"global\"", ErrInvalid, a.ID)
	}
	if a.TenantID != "" && !ValidTenantID(a.TenantID) {
		return fmt.Errorf("%w: tenant_id %q must be 1 to 32 characters of [0-9a-z]", ErrInvalid, a.TenantID)
	}
	if len(a.Name) > 200 {
		return fmt.Errorf("%w: name is longer than 200 characters", ErrInvalid)
	}
	if len(a.Keys) == 0 {
		return fmt.Errorf("%w: app %s: key is required", ErrInvalid, a.ID)
	}
	seen := map[string]bool{}
	for _, k := range a.Keys {
		if !validKey(k.Key) {
			return fmt.Errorf("%w: app %s: key %q must be 1 to 64 characters of [A-Za-z0-9_-]", ErrInvalid, a.ID, k.Key)
		}
		if seen[k.Key] {
			return fmt.Errorf("%w: app %s: key %q is listed twice", ErrInvalid, a.ID, k.Key)
		}
		seen[k.Key] = true
		if k.Secret.IsZero() || len(k.Secret.Reveal()) > 256 {
			return fmt.Errorf("%w: app %s: secret of key %q must be 1 to 256 characters", ErrInvalid, a.ID, k.Key)
		}
	}
	if err := a.Settings.Normalize(); err != nil {
		return fmt.Errorf("%w: app %s: %v", ErrInvalid, a.ID, err)
	}
	return nil
}

// App ids end up in every map key, Redis key and metric label, so they are
// restricted to characters that can never break a key's structure. "global"
// is reserved: it scopes the rate limits that apply before an app is known.
func validAppID(id string) bool {
	if len(id) == 0 || len(id) > 32 || id == "global" {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func validKey(k string) bool {
	if len(k) == 0 || len(k) > 64 {
		return false
	}
	return strings.IndexFunc(k, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r == '-')
	}) < 0
}

// NewApp creates an enabled app called name with a fresh id, key and secret
// and default settings.
func NewApp(name string) *App {
	a := &App{
		ID:      randomID(),
		Name:    name,
		Enabled: true,
		Keys:    []Key{NewKey()},
	}
	if err := a.Validate(); err != nil {
		panic(err) // generated values are valid by construction
	}
	return a
}

// NewKey returns a fresh key with a 32-byte random secret.
func NewKey() Key { return Key{Key: randomHex(10), Secret: NewSecret(randomHex(32))} }

// NewTenantID returns a fresh tenant id.
func NewTenantID() string { return "t" + randomHex(6) }

// ValidTenantID reports whether id can name a tenant: the same rule as app
// ids, and not "platform", which names the audit chain of platform-wide
// actions next to the tenants' chains.
func ValidTenantID(id string) bool { return validAppID(id) && id != "platform" }

// DefaultPlan is the plan of a tenant created without one.
const DefaultPlan = "free"

// validateTenant checks a tenant about to be created; an empty status
// means TenantActive, and an empty plan DefaultPlan (filled in here).
func validateTenant(t *Tenant) error {
	if t.Plan == "" {
		t.Plan = DefaultPlan
	}
	if !ValidTenantID(t.ID) {
		return fmt.Errorf("%w: id %q must be 1 to 32 characters of [0-9a-z], and not \"global\" or \"platform\"", ErrInvalid, t.ID)
	}
	if t.Status != "" && t.Status != TenantActive && t.Status != TenantSuspended {
		return fmt.Errorf("%w: status must be %s or %s", ErrInvalid, TenantActive, TenantSuspended)
	}
	if len(t.Name) > 200 {
		return fmt.Errorf("%w: name is longer than 200 characters", ErrInvalid)
	}
	return nil
}

// defaultTenant is the tenant that PutApp creates on demand for apps
// without one.
func defaultTenant() *Tenant {
	return &Tenant{ID: DefaultTenantID, Name: "Default", Plan: "enterprise", Status: TenantActive}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// randomID returns a numeric app id, the shape hosted Pusher uses.
func randomID() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return fmt.Sprint(1000000 + n%9000000)
}
