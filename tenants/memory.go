package tenants

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemoryStore is the embedded Store: one node only, nothing survives a
// restart.
type MemoryStore struct {
	mu      sync.RWMutex
	tenants map[string]*Tenant
	apps    map[string]*App // as stored: Suspended is applied on read
	byKey   map[string]string
	keys    map[string][]memKey // by app id, oldest first
}

type memKey struct {
	key     Key
	created time.Time
	revoked *time.Time
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{tenants: map[string]*Tenant{}, apps: map[string]*App{},
		byKey: map[string]string{}, keys: map[string][]memKey{}}
}

// view returns the app as lookups show it; the caller holds m.mu.
func (m *MemoryStore) view(a *App) *App {
	t := m.tenants[a.TenantID]
	if t == nil || t.Status != TenantSuspended {
		return a
	}
	v := *a
	v.Suspended = true
	return &v
}

func (m *MemoryStore) AppByKey(_ context.Context, key string) (*App, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if id, ok := m.byKey[key]; ok {
		return m.view(m.apps[id]), nil
	}
	return nil, ErrNotFound
}

func (m *MemoryStore) AppByID(_ context.Context, id string) (*App, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if a, ok := m.apps[id]; ok {
		return m.view(a), nil
	}
	return nil, ErrNotFound
}

func (m *MemoryStore) Apps(_ context.Context, tenantID string) ([]*App, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	apps := make([]*App, 0, len(m.apps))
	for _, a := range m.apps {
		if tenantID == "" || a.TenantID == tenantID {
			apps = append(apps, m.view(a))
		}
	}
	slices.SortFunc(apps, func(a, b *App) int { return strings.Compare(a.ID, b.ID) })
	return apps, nil
}

func (m *MemoryStore) PutApp(_ context.Context, app *App) error {
	a := cloneApp(app)
	if a.TenantID == "" {
		a.TenantID = DefaultTenantID
	}
	if err := a.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.tenants[a.TenantID]; !ok {
		if a.TenantID != DefaultTenantID {
			return fmt.Errorf("%w: tenant %q", ErrNotFound, a.TenantID)
		}
		d := defaultTenant()
		d.CreatedAt = time.Now()
		m.tenants[DefaultTenantID] = d
	}
	if old, ok := m.apps[a.ID]; ok && old.TenantID != a.TenantID {
		return fmt.Errorf("%w: app %s belongs to another tenant", ErrConflict, a.ID)
	}
	// A tenant's plan never changes here, so the app keeps a copy of it
	// and lookups need not copy the app to add it.
	a.Plan = m.tenants[a.TenantID].Plan
	for _, k := range a.Keys {
		if owner, ok := m.byKey[k.Key]; ok && owner != a.ID {
			return fmt.Errorf("%w: key %q belongs to another app", ErrConflict, k.Key)
		}
	}
	now := time.Now()
	keys := m.keys[a.ID]
	for i := range keys {
		if keys[i].revoked == nil && !slices.ContainsFunc(a.Keys, func(k Key) bool { return k.Key == keys[i].key.Key }) {
			keys[i].revoked = &now
			delete(m.byKey, keys[i].key.Key)
		}
	}
	for _, k := range a.Keys {
		i := slices.IndexFunc(keys, func(mk memKey) bool { return mk.key.Key == k.Key })
		if i < 0 {
			keys = append(keys, memKey{key: k, created: now})
		} else {
			keys[i].key, keys[i].revoked = k, nil
		}
		m.byKey[k.Key] = a.ID
	}
	m.keys[a.ID] = keys
	m.apps[a.ID] = a
	return nil
}

func (m *MemoryStore) UpdateApp(_ context.Context, id string, change func(*App) error) (*App, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.apps[id]
	if !ok {
		return nil, ErrNotFound
	}
	a := cloneApp(old)
	if err := change(a); err != nil {
		return nil, err
	}
	// Suspended is derived from the tenant on every read, never stored.
	a.ID, a.TenantID, a.Keys, a.Suspended, a.Plan = old.ID, old.TenantID, old.Keys, false, old.Plan
	if err := a.Validate(); err != nil {
		return nil, err
	}
	m.apps[id] = a
	return m.view(a), nil
}

func (m *MemoryStore) CreateTenant(_ context.Context, t *Tenant) error {
	if err := validateTenant(t); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.tenants[t.ID]; ok {
		return fmt.Errorf("%w: tenant %q exists", ErrConflict, t.ID)
	}
	c := *t
	if c.Status == "" {
		c.Status = TenantActive
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	m.tenants[t.ID] = &c
	return nil
}

func (m *MemoryStore) Tenant(_ context.Context, id string) (*Tenant, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if t, ok := m.tenants[id]; ok {
		c := *t
		return &c, nil
	}
	return nil, ErrNotFound
}

func (m *MemoryStore) Tenants(context.Context) ([]*Tenant, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Tenant, 0, len(m.tenants))
	for _, t := range m.tenants {
		c := *t
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *Tenant) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (m *MemoryStore) SetTenantStatus(_ context.Context, id, status string) error {
	if status != TenantActive && status != TenantSuspended {
		return fmt.Errorf("%w: status must be %s or %s", ErrInvalid, TenantActive, TenantSuspended)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tenants[id]
	if !ok {
		return ErrNotFound
	}
	c := *t
	c.Status = status
	m.tenants[id] = &c
	return nil
}

func (m *MemoryStore) CreateKey(_ context.Context, appID string) (Key, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.apps[appID]
	if !ok {
		return Key{}, ErrNotFound
	}
	k := NewKey()
	a := cloneApp(old)
	a.Keys = append(a.Keys, k)
	m.keys[appID] = append(m.keys[appID], memKey{key: k, created: time.Now()})
	m.byKey[k.Key] = appID
	m.apps[appID] = a
	return k, nil
}

func (m *MemoryStore) RevokeKey(_ context.Context, appID, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.apps[appID]
	if !ok {
		return ErrNotFound
	}
	i := slices.IndexFunc(old.Keys, func(k Key) bool { return k.Key == key })
	if i < 0 {
		return fmt.Errorf("%w: key %q is not an active key of app %s", ErrNotFound, key, appID)
	}
	if len(old.Keys) == 1 {
		return fmt.Errorf("%w: key %q is the app's last active key; create another first", ErrInvalid, key)
	}
	a := cloneApp(old)
	a.Keys = slices.Delete(a.Keys, i, i+1)
	now := time.Now()
	for j := range m.keys[appID] {
		if m.keys[appID][j].key.Key == key {
			m.keys[appID][j].revoked = &now
		}
	}
	delete(m.byKey, key)
	m.apps[appID] = a
	return nil
}

func (m *MemoryStore) Keys(_ context.Context, appID string) ([]KeyInfo, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, ok := m.apps[appID]; !ok {
		return nil, ErrNotFound
	}
	out := make([]KeyInfo, 0, len(m.keys[appID]))
	for _, k := range m.keys[appID] {
		out = append(out, KeyInfo{Key: k.key.Key, SecretLast4: Last4(k.key.Secret), CreatedAt: k.created, RevokedAt: k.revoked})
	}
	return out, nil
}

// Last4 returns the last four characters of a secret, the only part ever
// shown again after creation.
func Last4(s Secret) string {
	v := s.Reveal()
	if len(v) <= 4 {
		return ""
	}
	return v[len(v)-4:]
}

// cloneApp copies an app deeply enough that the copy can be changed.
func cloneApp(app *App) *App {
	a := *app
	a.Keys = slices.Clone(app.Keys)
	a.Suspended, a.Plan = false, ""
	if p := app.Settings.Features.ClientEvents; p != nil {
		on := *p
		a.Settings.Features.ClientEvents = &on
	}
	return &a
}
