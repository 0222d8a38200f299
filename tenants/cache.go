package tenants

import (
	"context"
	"errors"
	"sync"
	"time"
)

// DefaultCacheTTL is how long a Cache serves an app without asking its
// store, when NewCache is given no TTL.
const DefaultCacheTTL = 30 * time.Second

// negativeTTL is how long a Cache remembers that a key or id is unknown:
// long enough that a flood of made-up keys costs the database one query
// per key per second, short enough that a key created on another node
// works almost at once even before its announcement arrives.
const negativeTTL = time.Second

// maxMissing bounds the remembered unknown keys and ids, which attackers
// choose freely. Past it the Cache first drops the expired ones and, if
// that is not enough, forgets them all.
const maxMissing = 10_000

// Cache is a read-through Store for request paths: AppByKey and AppByID are
// served from memory, each app for up to the TTL, so a node does not query
// its store on every connection and REST call. Every other method goes to
// the store. Writes through the Cache invalidate what they change; a change
// made on another node is seen once the TTL passes, or at once when the
// caller relays the node's announcement to Invalidate or InvalidateTenant.
// Safe for concurrent use.
type Cache struct {
	store Store
	ttl   time.Duration
	now   func() time.Time

	mu sync.RWMutex
	// gen counts invalidations. A lookup that missed stores its result
	// only if gen did not move while it asked the store, so a value read
	// before a change can never be cached after the change's
	// invalidation.
	gen     uint64
	found   map[lookup]cachedApp
	missing map[lookup]time.Time // expiry of "not found"
}

// lookup is a cache key: an app id, or an app key.
type lookup struct {
	byKey bool
	v     string
}

type cachedApp struct {
	app     *App
	expires time.Time
}

var _ Store = (*Cache)(nil)

// NewCache returns a cache over store that keeps apps for ttl
// (DefaultCacheTTL if ttl <= 0).
func NewCache(store Store, ttl time.Duration) *Cache {
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	return &Cache{store: store, ttl: ttl, now: time.Now,
		found: map[lookup]cachedApp{}, missing: map[lookup]time.Time{}}
}

// Invalidate drops every cached entry of the app (by id and by each of its
// keys, active or not) and every remembered unknown key, so the next lookup
// reads the store. Call it when another node announces a change to the
// app.
func (c *Cache) Invalidate(appID string) {
	c.invalidate(func(a *App) bool { return a.ID == appID })
}

// InvalidateTenant does what Invalidate does for every app of the tenant;
// call it when another node announces that the tenant's status changed.
func (c *Cache) InvalidateTenant(tenantID string) {
	c.invalidate(func(a *App) bool { return a.TenantID == tenantID })
}

func (c *Cache) invalidate(match func(*App) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for l, e := range c.found {
		if match(e.app) {
			delete(c.found, l)
		}
	}
	// A key unknown until now may just have been given to this app.
	clear(c.missing)
}

func (c *Cache) AppByKey(ctx context.Context, key string) (*App, error) {
	return c.get(lookup{byKey: true, v: key}, func() (*App, error) { return c.store.AppByKey(ctx, key) })
}

func (c *Cache) AppByID(ctx context.Context, id string) (*App, error) {
	return c.get(lookup{v: id}, func() (*App, error) { return c.store.AppByID(ctx, id) })
}

func (c *Cache) get(l lookup, load func() (*App, error)) (*App, error) {
	now := c.now()
	c.mu.RLock()
	e, hit := c.found[l]
	notFoundUntil, miss := c.missing[l]
	gen := c.gen
	c.mu.RUnlock()
	if hit && now.Before(e.expires) {
		return e.app, nil
	}
	if miss && now.Before(notFoundUntil) {
		return nil, ErrNotFound
	}

	app, err := load()
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err // a failing store is asked again next time
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return app, err
	}
	if err != nil {
		c.rememberMissing(l, now.Add(min(negativeTTL, c.ttl)))
		return nil, err
	}
	e = cachedApp{app: app, expires: now.Add(c.ttl)}
	c.found[l] = e
	c.found[lookup{v: app.ID}] = e
	return app, nil
}

// rememberMissing records an unknown lookup; the caller holds c.mu.
func (c *Cache) rememberMissing(l lookup, until time.Time) {
	if len(c.missing) >= maxMissing {
		now := c.now()
		for m, exp := range c.missing {
			if !now.Before(exp) {
				delete(c.missing, m)
			}
		}
		if len(c.missing) >= maxMissing {
			clear(c.missing)
		}
	}
	c.missing[l] = until
}

func (c *Cache) Apps(ctx context.Context, tenantID string) ([]*App, error) {
	return c.store.Apps(ctx, tenantID)
}

func (c *Cache) PutApp(ctx context.Context, app *App) error {
	// Invalidated even on error: a failed call may still have committed
	// (a timeout after the write).
	defer c.Invalidate(app.ID)
	return c.store.PutApp(ctx, app)
}

func (c *Cache) UpdateApp(ctx context.Context, id string, change func(*App) error) (*App, error) {
	defer c.Invalidate(id)
	return c.store.UpdateApp(ctx, id, change)
}

func (c *Cache) CreateTenant(ctx context.Context, t *Tenant) error {
	return c.store.CreateTenant(ctx, t)
}

func (c *Cache) Tenant(ctx context.Context, id string) (*Tenant, error) {
	return c.store.Tenant(ctx, id)
}

func (c *Cache) Tenants(ctx context.Context) ([]*Tenant, error) {
	return c.store.Tenants(ctx)
}

func (c *Cache) SetTenantStatus(ctx context.Context, id, status string) error {
	defer c.InvalidateTenant(id)
	return c.store.SetTenantStatus(ctx, id, status)
}

func (c *Cache) CreateKey(ctx context.Context, appID string) (Key, error) {
	defer c.Invalidate(appID)
	return c.store.CreateKey(ctx, appID)
}

func (c *Cache) RevokeKey(ctx context.Context, appID, key string) error {
	defer c.Invalidate(appID)
	return c.store.RevokeKey(ctx, appID, key)
}

func (c *Cache) Keys(ctx context.Context, appID string) ([]KeyInfo, error) {
	return c.store.Keys(ctx, appID)
}
