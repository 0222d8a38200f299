package authz

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/heraldrt/herald/internal/dbtest"
	"github.com/heraldrt/herald/tenants"
)

// testPolicyStore is the contract every PolicyStore keeps. newStore returns
// an empty store in which apps "1" and "2" exist.
func testPolicyStore(t *testing.T, newStore func(t *testing.T) PolicyStore) {
	ctx := context.Background()

	t.Run("default until replaced", func(t *testing.T) {
		s := newStore(t)
		v, err := s.Current(ctx, "1")
		if err != nil || v.Version != 0 || v.Document != DefaultPolicy || v.Author != "herald" || v.AppID != "1" {
			t.Fatalf("Current of a new app: %+v, %v", v, err)
		}
		if h, err := s.History(ctx, "1", 10); err != nil || len(h) != 0 {
			t.Errorf("History of a new app: %+v, %v", h, err)
		}
	})

	t.Run("versions", func(t *testing.T) {
		s := newStore(t)
		docs := []string{"allow * * *\n", "allow * * subscribe\n", "deny user:bob * *\nallow * * *\n"}
		for i, doc := range docs {
			v, err := s.Replace(ctx, "1", doc, "alice")
			if err != nil || v.Version != int64(i+1) || v.Document != doc || v.Author != "alice" || v.CreatedAt.IsZero() {
				t.Fatalf("Replace %d: %+v, %v", i, v, err)
			}
		}
		cur, err := s.Current(ctx, "1")
		if err != nil || cur.Version != 3 || cur.Document != docs[2] {
			t.Errorf("Current: %+v, %v", cur, err)
		}
		h, err := s.History(ctx, "1", 2)
		if err != nil || len(h) != 2 || h[0].Version != 3 || h[1].Version != 2 {
			t.Errorf("History(2): %+v, %v", h, err)
		}
		// Another app's policy is its own.
		if v, _ := s.Current(ctx, "2"); v.Version != 0 {
			t.Errorf("app 2 sees app 1's policy: %+v", v)
		}
	})

	t.Run("invalid documents store nothing", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Replace(ctx, "1", "allow * * subscribe\nallow * * publish\n", "alice")
		var pe *PolicyError
		if !errors.As(err, &pe) || pe.Line != 2 {
			t.Fatalf("invalid document: %v", err)
		}
		if v, _ := s.Current(ctx, "1"); v.Version != 0 {
			t.Errorf("an invalid document was stored: %+v", v)
		}
	})

	t.Run("concurrent replaces get consecutive versions", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		seen := make(chan int64, 20)
		for range 20 {
			wg.Go(func() {
				v, err := s.Replace(ctx, "1", "allow * * *\n", "alice")
				if err != nil {
					t.Error(err)
					return
				}
				seen <- v.Version
			})
		}
		wg.Wait()
		close(seen)
		got := map[int64]bool{}
		for v := range seen {
			got[v] = true
		}
		for v := int64(1); v <= 20; v++ {
			if !got[v] {
				t.Fatalf("versions %v miss %d", got, v)
			}
		}
	})
}

func TestMemoryPolicies(t *testing.T) {
	testPolicyStore(t, func(*testing.T) PolicyStore { return NewMemoryPolicies() })
}

func TestPostgresPolicies(t *testing.T) {
	newStore := func(t *testing.T) PolicyStore {
		pool := dbtest.Migrated(t)
		keys, err := tenants.ParseKeyring("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "", "")
		if err != nil {
			t.Fatal(err)
		}
		apps := tenants.NewPostgresStore(pool, keys)
		for _, id := range []string{"1", "2"} {
			a := tenants.NewApp("app " + id)
			a.ID = id
			if err := apps.PutApp(context.Background(), a); err != nil {
				t.Fatal(err)
			}
		}
		return NewPostgresPolicies(pool)
	}
	testPolicyStore(t, newStore)
	t.Run("unknown app", func(t *testing.T) {
		if _, err := newStore(t).Replace(context.Background(), "404", "allow * * *", "alice"); !errors.Is(err, tenants.ErrNotFound) {
			t.Errorf("Replace for an unknown app: %v", err)
		}
	})
}

// countingStore counts Current calls, to see what the cache reads.
type countingStore struct {
	PolicyStore
	mu    sync.Mutex
	reads int
	fail  error
}

func (c *countingStore) Current(ctx context.Context, appID string) (PolicyVersion, error) {
	c.mu.Lock()
	c.reads++
	fail := c.fail
	c.mu.Unlock()
	if fail != nil {
		return PolicyVersion{}, fail
	}
	return c.PolicyStore.Current(ctx, appID)
}

// The cache reads the store once per app until invalidated, recompiles
// only for a new version, and serves its copy if the store fails.
func TestPoliciesCache(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{PolicyStore: NewMemoryPolicies()}
	cache := NewPolicies(store, 0)
	p1, err := cache.For(ctx, "1")
	if err != nil || p1.Version() != 0 {
		t.Fatalf("For: %v, %v", p1, err)
	}
	if p, _ := cache.For(ctx, "1"); p != p1 || store.reads != 1 {
		t.Errorf("a second For read the store (%d reads) or recompiled", store.reads)
	}
	cache.Invalidate("1")
	if p, _ := cache.For(ctx, "1"); p != p1 || store.reads != 2 {
		t.Errorf("after Invalidate with the same version: recompiled or did not read (%d reads)", store.reads)
	}
	if _, err := store.Replace(ctx, "1", "deny * * *\n", "alice"); err != nil {
		t.Fatal(err)
	}
	cache.Invalidate("1")
	p2, err := cache.For(ctx, "1")
	if err != nil || p2.Version() != 1 || p2.Check(Subject{}, "x", ActionSubscribe).Allowed {
		t.Fatalf("after a change: %v, %v", p2, err)
	}
	store.fail = errors.New("database down")
	cache.Invalidate("1")
	if p, err := cache.For(ctx, "1"); err != nil || p != p2 {
		t.Errorf("store down with a copy at hand: %v, %v", p, err)
	}
	if _, err := cache.For(ctx, "2"); err == nil {
		t.Error("store down without a copy: no error, so a check would have run on nothing")
	}
}
