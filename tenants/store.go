package tenants

import (
	"context"
	"time"
)

// Tenant is a customer account that owns apps.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Plan      string    `json:"plan"`   // free, pro or enterprise
	Status    string    `json:"status"` // active or suspended
	CreatedAt time.Time `json:"created_at"`
}

// Tenant statuses.
const (
	TenantActive    = "active"
	TenantSuspended = "suspended"
)

// DefaultTenantID owns apps declared with HERALD_APPS or --apps-file, and
// the demo app.
const DefaultTenantID = "default"

// KeyInfo describes one key of an app without its secret.
type KeyInfo struct {
	Key         string     `json:"key"`
	SecretLast4 string     `json:"secret_last4"`
	CreatedAt   time.Time  `json:"created_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

// Store holds tenants, their apps and the apps' keys. Every method is safe
// for concurrent use. Returned values must not be modified: change an app
// through PutApp or UpdateApp.
//
// Lookups return apps with only their active keys, and with Suspended set
// when the owning tenant is suspended.
type Store interface {
	// AppByKey returns the app that owns the active key, or ErrNotFound.
	// Keys are unique across all apps.
	AppByKey(ctx context.Context, key string) (*App, error)
	// AppByID returns the app with id, or ErrNotFound.
	AppByID(ctx context.Context, id string) (*App, error)
	// Apps returns every app, ordered by id; with a tenant id, only that
	// tenant's.
	Apps(ctx context.Context, tenantID string) ([]*App, error)
	// PutApp validates app and creates or replaces it with exactly the
	// given keys (keys no longer listed are revoked). Its tenant must
	// exist; an empty TenantID means DefaultTenantID, created on demand.
	// It is idempotent, so nodes starting at once may put the same apps.
	// It returns ErrConflict if a key belongs to another app and ErrInvalid
	// (wrapped, naming the field) if the app does not validate.
	PutApp(ctx context.Context, app *App) error
	// UpdateApp applies change to the stored app and saves the result
	// atomically (name, enabled and settings; id, tenant and keys are
	// kept). It returns the saved app, ErrNotFound, or the error of change
	// or of validation.
	UpdateApp(ctx context.Context, id string, change func(*App) error) (*App, error)

	// CreateTenant stores a new tenant; ErrConflict if the id is taken.
	CreateTenant(ctx context.Context, t *Tenant) error
	// Tenant returns the tenant with id, or ErrNotFound.
	Tenant(ctx context.Context, id string) (*Tenant, error)
	// Tenants returns every tenant, ordered by id.
	Tenants(ctx context.Context) ([]*Tenant, error)
	// SetTenantStatus sets a tenant's status (TenantActive or
	// TenantSuspended).
	SetTenantStatus(ctx context.Context, id, status string) error

	// CreateKey adds a new key with a fresh secret to the app and returns
	// it; this is the only time the secret is returned.
	CreateKey(ctx context.Context, appID string) (Key, error)
	// RevokeKey revokes one of the app's active keys. Revoking the last
	// active key is refused with ErrInvalid.
	RevokeKey(ctx context.Context, appID, key string) error
	// Keys lists the app's keys, active and revoked, oldest first.
	Keys(ctx context.Context, appID string) ([]KeyInfo, error)
}
