package tenants

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingStore counts the lookups that reach the store behind a Cache.
type countingStore struct {
	Store
	byKey, byID atomic.Int64
	fail        atomic.Bool
}

var errStoreDown = errors.New("store down")

func (s *countingStore) AppByKey(ctx context.Context, key string) (*App, error) {
	s.byKey.Add(1)
	if s.fail.Load() {
		return nil, errStoreDown
	}
	return s.Store.AppByKey(ctx, key)
}

func (s *countingStore) AppByID(ctx context.Context, id string) (*App, error) {
	s.byID.Add(1)
	if s.fail.Load() {
		return nil, errStoreDown
	}
	return s.Store.AppByID(ctx, id)
}

// cacheFixture is a Cache over a counted memory store with a clock the test
// moves.
type cacheFixture struct {
	mem   *MemoryStore
	store *countingStore
	cache *Cache
	mu    sync.Mutex
	now   time.Time
}

func newCacheFixture(t *testing.T, ttl time.Duration) *cacheFixture {
	t.Helper()
	f := &cacheFixture{mem: NewMemoryStore(), now: time.Unix(1_700_000_000, 0)}
	f.store = &countingStore{Store: f.mem}
	f.cache = NewCache(f.store, ttl)
	f.cache.now = func() time.Time {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.now
	}
	for _, a := range []*App{
		{ID: "1", Name: "one", Keys: []Key{{Key: "k1", Secret: NewSecret("s1")}, {Key: "k1b", Secret: NewSecret("s1b")}}},
		{ID: "2", Name: "two", Keys: []Key{{Key: "k2", Secret: NewSecret("s2")}}},
	} {
		if err := f.mem.PutApp(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *cacheFixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func (f *cacheFixture) name(t *testing.T, key string) string {
	t.Helper()
	a, err := f.cache.AppByKey(context.Background(), key)
	if errors.Is(err, ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatalf("AppByKey(%s): %v", key, err)
	}
	return a.Name
}

func TestCache_ServesFromMemoryForTheTTL(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, 0)
	for range 5 {
		if f.name(t, "k1") != "one" {
			t.Fatal("wrong app")
		}
	}
	if n := f.store.byKey.Load(); n != 1 {
		t.Errorf("5 lookups of one key reached the store %d times, want 1", n)
	}
	// The app found by key is cached by id as well.
	if _, err := f.cache.AppByID(ctx, "1"); err != nil || f.store.byID.Load() != 0 {
		t.Errorf("AppByID after AppByKey: %v, %d store calls", err, f.store.byID.Load())
	}

	// A change made elsewhere (another node) is not seen until the TTL
	// (DefaultCacheTTL) passes.
	if _, err := f.mem.UpdateApp(ctx, "1", func(a *App) error { a.Name = "renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	f.advance(DefaultCacheTTL - time.Second)
	if got := f.name(t, "k1"); got != "one" {
		t.Errorf("before the TTL: %q", got)
	}
	f.advance(time.Second)
	if got := f.name(t, "k1"); got != "renamed" {
		t.Errorf("after the TTL: %q, want renamed", got)
	}
}

func TestCache_RemembersUnknownKeysBriefly(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Minute)
	for range 100 {
		if f.name(t, "nope") != "" {
			t.Fatal("found an unknown key")
		}
	}
	if n := f.store.byKey.Load(); n != 1 {
		t.Errorf("a flood of one unknown key reached the store %d times, want 1", n)
	}
	for range 10 {
		if _, err := f.cache.AppByID(ctx, "404"); !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
	if n := f.store.byID.Load(); n != 1 {
		t.Errorf("unknown id reached the store %d times, want 1", n)
	}
	// A key created elsewhere is found once the short negative TTL passes,
	// long before the positive TTL.
	if err := f.mem.PutApp(ctx, &App{ID: "3", Name: "three", Keys: []Key{{Key: "nope", Secret: NewSecret("s")}}}); err != nil {
		t.Fatal(err)
	}
	f.advance(negativeTTL)
	if got := f.name(t, "nope"); got != "three" {
		t.Errorf("after the negative TTL: %q, want three", got)
	}
}

func TestCache_UnknownKeysAreBounded(t *testing.T) {
	f := newCacheFixture(t, 0)
	for i := range 3 * maxMissing {
		f.name(t, fmt.Sprintf("made-up-%d", i))
	}
	f.cache.mu.RLock()
	n := len(f.cache.missing)
	f.cache.mu.RUnlock()
	if n > maxMissing {
		t.Errorf("%d unknown keys remembered, want at most %d", n, maxMissing)
	}
}

func TestCache_StoreErrorsAreNotCached(t *testing.T) {
	f := newCacheFixture(t, 0)
	f.store.fail.Store(true)
	for range 3 {
		if _, err := f.cache.AppByKey(context.Background(), "k2"); !errors.Is(err, errStoreDown) {
			t.Fatalf("AppByKey with the store down = %v", err)
		}
	}
	if n := f.store.byKey.Load(); n != 3 {
		t.Errorf("store asked %d times, want 3 (errors are not cached)", n)
	}
	f.store.fail.Store(false)
	if got := f.name(t, "k2"); got != "two" {
		t.Errorf("after recovery: %q", got)
	}
}

func TestCache_Invalidate(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Hour)
	f.name(t, "k1")
	f.name(t, "k1b")
	f.name(t, "k2")
	if _, err := f.cache.AppByID(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	// Another node revokes k1 and renames the app, then announces it.
	if err := f.mem.RevokeKey(ctx, "1", "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.mem.UpdateApp(ctx, "1", func(a *App) error { a.Name = "renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if f.name(t, "k1") != "one" {
		t.Fatal("the cache did not serve the cached app")
	}
	f.cache.Invalidate("1")
	if got := f.name(t, "k1"); got != "" {
		t.Errorf("revoked key after Invalidate: %q, want not found", got)
	}
	if got := f.name(t, "k1b"); got != "renamed" {
		t.Errorf("other key after Invalidate: %q, want renamed", got)
	}
	if a, err := f.cache.AppByID(ctx, "1"); err != nil || a.Name != "renamed" {
		t.Errorf("AppByID after Invalidate = %v, %v", a, err)
	}
	// Other apps stay cached.
	before := f.store.byKey.Load()
	f.name(t, "k2")
	if f.store.byKey.Load() != before {
		t.Error("Invalidate(1) dropped app 2")
	}
}

func TestCache_WritesInvalidate(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Hour)
	f.name(t, "k1")
	f.name(t, "new")
	k, err := f.cache.CreateKey(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.name(t, k.Key); got != "one" {
		t.Errorf("new key: %q", got)
	}
	if err := f.cache.PutApp(ctx, &App{ID: "2", Name: "two", Keys: []Key{{Key: "k2"}}}); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
	if err := f.cache.PutApp(ctx, &App{ID: "2", Name: "two", Keys: []Key{{Key: "new", Secret: NewSecret("s")}}}); err != nil {
		t.Fatal(err)
	}
	if got := f.name(t, "new"); got != "two" {
		t.Errorf("a key remembered as unknown, then put: %q", got)
	}
	if got := f.name(t, "k2"); got != "" {
		t.Errorf("key dropped by PutApp: %q", got)
	}
	if err := f.cache.RevokeKey(ctx, "1", k.Key); err != nil {
		t.Fatal(err)
	}
	if got := f.name(t, k.Key); got != "" {
		t.Errorf("revoked key: %q", got)
	}
	if _, err := f.cache.UpdateApp(ctx, "1", func(a *App) error { a.Name = "renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := f.name(t, "k1"); got != "renamed" {
		t.Errorf("after UpdateApp: %q", got)
	}
}

func TestCache_TenantStatus(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Hour)
	a, err := f.cache.AppByKey(ctx, "k1")
	if err != nil || a.Suspended {
		t.Fatal(a, err)
	}
	f.name(t, "k2")
	if err := f.cache.SetTenantStatus(ctx, DefaultTenantID, TenantSuspended); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"k1", "k2"} {
		if a, err := f.cache.AppByKey(ctx, key); err != nil || !a.Suspended {
			t.Errorf("AppByKey(%s) after suspension: %+v, %v", key, a, err)
		}
	}
	// Another node reactivates the tenant and announces it.
	if err := f.mem.SetTenantStatus(ctx, DefaultTenantID, TenantActive); err != nil {
		t.Fatal(err)
	}
	f.cache.InvalidateTenant("other")
	if a, _ := f.cache.AppByKey(ctx, "k1"); !a.Suspended {
		t.Error("InvalidateTenant of another tenant dropped this one's apps")
	}
	f.cache.InvalidateTenant(DefaultTenantID)
	if a, _ := f.cache.AppByKey(ctx, "k1"); a.Suspended {
		t.Error("InvalidateTenant did not drop the tenant's apps")
	}
}

// slowStore blocks AppByKey until released, to interleave a lookup with a
// write.
type slowStore struct {
	Store
	entered, release chan struct{}
}

func (s *slowStore) AppByKey(ctx context.Context, key string) (*App, error) {
	a, err := s.Store.AppByKey(ctx, key)
	s.entered <- struct{}{}
	<-s.release
	return a, err
}

// A lookup that read the store before a write must not cache what it read
// after the write invalidated.
func TestCache_NoStaleFillAfterInvalidate(t *testing.T) {
	ctx := context.Background()
	mem := NewMemoryStore()
	if err := mem.PutApp(ctx, &App{ID: "1", Name: "old", Keys: []Key{{Key: "k1", Secret: NewSecret("s")}}}); err != nil {
		t.Fatal(err)
	}
	slow := &slowStore{Store: mem, entered: make(chan struct{}), release: make(chan struct{})}
	c := NewCache(slow, time.Hour)
	done := make(chan *App)
	go func() {
		a, _ := c.AppByKey(ctx, "k1")
		done <- a
	}()
	<-slow.entered // the lookup has read "old"
	if _, err := c.UpdateApp(ctx, "1", func(a *App) error { a.Name = "new"; return nil }); err != nil {
		t.Fatal(err)
	}
	close(slow.release)
	if a := <-done; a.Name != "old" {
		t.Fatalf("in-flight lookup returned %q", a.Name)
	}
	go func() { <-slow.entered }()
	a, err := c.AppByKey(ctx, "k1")
	if err != nil || a.Name != "new" {
		t.Errorf("lookup after the write = %+v, %v; want new (the stale read must not be cached)", a, err)
	}
}
