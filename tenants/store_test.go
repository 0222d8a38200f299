package tenants

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// testStore is the contract every Store must meet. Each backend's test calls
// it with a constructor that returns an empty store.
func testStore(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()

	app := func(id string, keys ...string) *App {
		a := &App{ID: id, Name: "app " + id, Enabled: true}
		for _, k := range keys {
			a.Keys = append(a.Keys, Key{Key: k, Secret: NewSecret("secret-of-" + k)})
		}
		return a
	}
	mustPut := func(t *testing.T, s Store, a *App) {
		t.Helper()
		if err := s.PutApp(ctx, a); err != nil {
			t.Fatalf("PutApp(%s): %v", a.ID, err)
		}
	}
	wantByKey := func(t *testing.T, s Store, key, id string) {
		t.Helper()
		a, err := s.AppByKey(ctx, key)
		if id == "" {
			if !errors.Is(err, ErrNotFound) || a != nil {
				t.Fatalf("AppByKey(%s) = %v, %v; want ErrNotFound", key, a, err)
			}
			return
		}
		if err != nil || a.ID != id {
			t.Fatalf("AppByKey(%s) = %v, %v; want app %s", key, a, err, id)
		}
	}

	t.Run("empty", func(t *testing.T) {
		s := newStore(t)
		wantByKey(t, s, "k1", "")
		if a, err := s.AppByID(ctx, "1"); !errors.Is(err, ErrNotFound) || a != nil {
			t.Fatalf("AppByID = %v, %v; want ErrNotFound", a, err)
		}
		if apps, err := s.Apps(ctx); err != nil || len(apps) != 0 {
			t.Fatalf("Apps = %v, %v", apps, err)
		}
	})

	t.Run("put and get", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, app("20", "k20"))
		mustPut(t, s, app("3", "k3a", "k3b"))
		mustPut(t, s, app("100", "k100"))
		wantByKey(t, s, "k3a", "3")
		wantByKey(t, s, "k3b", "3")
		wantByKey(t, s, "k20", "20")
		wantByKey(t, s, "K20", "") // keys are case-sensitive
		a, err := s.AppByID(ctx, "3")
		if err != nil || a.Name != "app 3" || len(a.Keys) != 2 || a.Keys[1].Secret.Reveal() != "secret-of-k3b" {
			t.Fatalf("AppByID(3) = %+v, %v", a, err)
		}
		if a.Settings.Limits.MaxPayloadBytes != DefaultMaxPayloadBytes || !a.Settings.Features.ClientEventsEnabled() {
			t.Errorf("stored app has no defaults: %+v", a.Settings)
		}
		apps, err := s.Apps(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range apps {
			ids = append(ids, a.ID)
		}
		if fmt.Sprint(ids) != "[100 20 3]" {
			t.Errorf("Apps ids %v, want ordered by id [100 20 3]", ids)
		}
	})

	t.Run("key of another app is a conflict", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, app("1", "k1"))
		err := s.PutApp(ctx, app("2", "k2", "k1"))
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("PutApp with another app's key = %v, want ErrConflict", err)
		}
		if _, err := s.AppByID(ctx, "2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("conflicting app was stored: %v", err)
		}
		wantByKey(t, s, "k2", "")
		wantByKey(t, s, "k1", "1")
	})

	t.Run("replace drops old keys", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, app("1", "old", "kept"))
		mustPut(t, s, app("1", "kept", "new"))
		wantByKey(t, s, "old", "")
		wantByKey(t, s, "kept", "1")
		wantByKey(t, s, "new", "1")
		if apps, _ := s.Apps(ctx); len(apps) != 1 {
			t.Errorf("replace made %d apps", len(apps))
		}
		// A key freed by the replace can go to another app.
		mustPut(t, s, app("2", "old"))
		wantByKey(t, s, "old", "2")
	})

	t.Run("failed replace keeps the old app", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, app("1", "k1"))
		mustPut(t, s, app("2", "k2"))
		if err := s.PutApp(ctx, app("1", "k2")); !errors.Is(err, ErrConflict) {
			t.Fatalf("replace with another app's key = %v, want ErrConflict", err)
		}
		wantByKey(t, s, "k1", "1")
		wantByKey(t, s, "k2", "2")
	})

	t.Run("invalid app", func(t *testing.T) {
		s := newStore(t)
		for _, a := range []*App{
			app("", "k1"),
			app("UPPER", "k1"),
			app("1"),
			app("1", "bad key"),
			app("1", "k1", "k1"),
			{ID: "1", Keys: []Key{{Key: "k1"}}},
			{ID: "1", Keys: []Key{{Key: "k1", Secret: NewSecret("s")}}, Settings: Settings{Limits: Limits{MaxConnections: -1}}},
		} {
			if err := s.PutApp(ctx, a); !errors.Is(err, ErrInvalid) {
				t.Errorf("PutApp(%+v) = %v, want ErrInvalid", a, err)
			}
		}
		if apps, _ := s.Apps(ctx); len(apps) != 0 {
			t.Errorf("invalid apps were stored: %v", apps)
		}
	})

	t.Run("stored app is a copy", func(t *testing.T) {
		s := newStore(t)
		on := true
		a := app("1", "k1")
		a.Settings.Features.ClientEvents = &on
		mustPut(t, s, a)
		// The caller keeps changing its value; the store must not see it.
		a.Name = "changed"
		a.Keys[0] = Key{Key: "k9", Secret: NewSecret("x")}
		on = false
		got, err := s.AppByID(ctx, "1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "app 1" || got.Keys[0].Key != "k1" || !got.Settings.Features.ClientEventsEnabled() {
			t.Errorf("stored app changed with the caller's value: %+v", got)
		}
		if a.Settings.Limits.MaxPayloadBytes != 0 {
			t.Errorf("PutApp filled defaults into the caller's app")
		}
		wantByKey(t, s, "k9", "")
	})

	t.Run("concurrent use", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					id := fmt.Sprint(w)
					if err := s.PutApp(ctx, app(id, fmt.Sprintf("k%d-%d", w, i%3))); err != nil {
						t.Error(err)
						return
					}
					if _, err := s.AppByID(ctx, id); err != nil {
						t.Error(err)
						return
					}
					_, _ = s.AppByKey(ctx, fmt.Sprintf("k%d-%d", (w+1)%4, i%3))
					_, _ = s.Apps(ctx)
				}
			}()
		}
		wg.Wait()
		for w := 0; w < 4; w++ {
			// 199 % 3 == 1: only the last key of each app remains.
			wantByKey(t, s, fmt.Sprintf("k%d-1", w), fmt.Sprint(w))
			wantByKey(t, s, fmt.Sprintf("k%d-0", w), "")
		}
	})

	t.Run("PutApps stops at the first error", func(t *testing.T) {
		s := newStore(t)
		err := PutApps(ctx, s, []*App{app("1", "k1"), app("2", "k1"), app("3", "k3")})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("PutApps = %v, want ErrConflict", err)
		}
		if want := "app 2: "; err.Error()[:len(want)] != want {
			t.Errorf("PutApps error %q does not name app 2 first", err)
		}
		wantByKey(t, s, "k3", "")
	})
}

func TestMemoryStore(t *testing.T) {
	testStore(t, func(*testing.T) Store { return NewMemoryStore() })
}
