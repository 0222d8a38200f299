package tenants

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
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
	wantByKey := func(t *testing.T, s Store, key, id string) *App {
		t.Helper()
		a, err := s.AppByKey(ctx, key)
		if id == "" {
			if !errors.Is(err, ErrNotFound) || a != nil {
				t.Fatalf("AppByKey(%s) = %v, %v; want ErrNotFound", key, a, err)
			}
			return nil
		}
		if err != nil || a.ID != id {
			t.Fatalf("AppByKey(%s) = %v, %v; want app %s", key, a, err, id)
		}
		return a
	}
	mustByID := func(t *testing.T, s Store, id string) *App {
		t.Helper()
		a, err := s.AppByID(ctx, id)
		if err != nil {
			t.Fatalf("AppByID(%s): %v", id, err)
		}
		return a
	}
	keyNames := func(keys []Key) string {
		var names []string
		for _, k := range keys {
			names = append(names, k.Key)
		}
		return strings.Join(names, ",")
	}
	// listed returns the app's keys as Keys lists them: "key" for an active
	// key, "key-" for a revoked one.
	listed := func(t *testing.T, s Store, appID string) string {
		t.Helper()
		infos, err := s.Keys(ctx, appID)
		if err != nil {
			t.Fatalf("Keys(%s): %v", appID, err)
		}
		var names []string
		for _, k := range infos {
			if k.CreatedAt.IsZero() {
				t.Errorf("Keys(%s): key %s has no CreatedAt", appID, k.Key)
			}
			if k.RevokedAt != nil {
				names = append(names, k.Key+"-")
			} else {
				names = append(names, k.Key)
			}
		}
		return strings.Join(names, ",")
	}
	appIDs := func(t *testing.T, s Store, tenantID string) string {
		t.Helper()
		apps, err := s.Apps(ctx, tenantID)
		if err != nil {
			t.Fatalf("Apps(%q): %v", tenantID, err)
		}
		var ids []string
		for _, a := range apps {
			ids = append(ids, a.ID)
		}
		return strings.Join(ids, ",")
	}

	t.Run("empty", func(t *testing.T) {
		s := newStore(t)
		wantByKey(t, s, "k1", "")
		if a, err := s.AppByID(ctx, "1"); !errors.Is(err, ErrNotFound) || a != nil {
			t.Fatalf("AppByID = %v, %v; want ErrNotFound", a, err)
		}
		if apps, err := s.Apps(ctx, ""); err != nil || len(apps) != 0 {
			t.Fatalf("Apps = %v, %v", apps, err)
		}
		if ts, err := s.Tenants(ctx); err != nil || len(ts) != 0 {
			t.Fatalf("Tenants = %v, %v", ts, err)
		}
		if _, err := s.Tenant(ctx, DefaultTenantID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Tenant(default) = %v before any app; want ErrNotFound", err)
		}
		// Lookups of strings that could never be stored are plain misses.
		wantByKey(t, s, "", "")
		wantByKey(t, s, "bad key'--", "")
		if _, err := s.AppByID(ctx, "1' OR '1'='1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("AppByID(injection) = %v; want ErrNotFound", err)
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
		a := mustByID(t, s, "3")
		if a.Name != "app 3" || !a.Enabled || a.Suspended || a.TenantID != DefaultTenantID || len(a.Keys) != 2 || a.Keys[1].Secret.Reveal() != "secret-of-k3b" {
			t.Fatalf("AppByID(3) = %+v", a)
		}
		if sec, ok := a.SecretFor("k3a"); !ok || sec.Reveal() != "secret-of-k3a" {
			t.Errorf("SecretFor(k3a) = %v, %v", sec.Reveal(), ok)
		}
		if a.Settings.Limits.MaxPayloadBytes != DefaultMaxPayloadBytes || !a.Settings.Features.ClientEventsEnabled() {
			t.Errorf("stored app has no defaults: %+v", a.Settings)
		}
		if ids := appIDs(t, s, ""); ids != "100,20,3" {
			t.Errorf("Apps ids %v, want ordered by id 100,20,3", ids)
		}
		if ids := appIDs(t, s, DefaultTenantID); ids != "100,20,3" {
			t.Errorf("Apps(default) ids %v", ids)
		}
		// The default tenant was created on demand.
		d, err := s.Tenant(ctx, DefaultTenantID)
		if err != nil || d.Status != TenantActive {
			t.Fatalf("Tenant(default) = %+v, %v", d, err)
		}
	})

	t.Run("settings round trip", func(t *testing.T) {
		s := newStore(t)
		off := false
		a := app("1", "k1")
		a.Enabled = false
		a.Settings = Settings{
			Limits:   Limits{MaxConnections: 7, MaxPayloadBytes: 2048, MaxPresenceMembers: 3},
			Features: Features{ClientEvents: &off},
		}
		mustPut(t, s, a)
		got := mustByID(t, s, "1")
		want := Settings{Limits: Limits{MaxConnections: 7, MaxPayloadBytes: 2048, MaxPresenceMembers: 3}}
		if err := want.Normalize(); err != nil {
			t.Fatal(err)
		}
		if got.Enabled || got.Settings.Limits != want.Limits || got.Settings.Features.ClientEventsEnabled() {
			t.Errorf("AppByID = enabled %v, settings %+v; want disabled, %+v, client events off", got.Enabled, got.Settings, want)
		}
	})

	t.Run("key order", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, app("1", "kb", "ka", "kc"))
		// Lookups keep the order the app lists its keys in: the first is the
		// primary key.
		if got := keyNames(mustByID(t, s, "1").Keys); got != "kb,ka,kc" {
			t.Errorf("keys %s, want kb,ka,kc", got)
		}
		if got := wantByKey(t, s, "kc", "1").PrimaryKey().Key; got != "kb" {
			t.Errorf("PrimaryKey = %s, want kb", got)
		}
		if got := listed(t, s, "1"); got != "kb,ka,kc" {
			t.Errorf("Keys lists %s, want kb,ka,kc", got)
		}
		k, err := s.CreateKey(ctx, "1")
		if err != nil {
			t.Fatal(err)
		}
		if got := keyNames(mustByID(t, s, "1").Keys); got != "kb,ka,kc,"+k.Key {
			t.Errorf("after CreateKey keys %s, want the new key last", got)
		}
		if got := listed(t, s, "1"); got != "kb,ka,kc,"+k.Key {
			t.Errorf("after CreateKey Keys lists %s, want the new key last", got)
		}
	})

	t.Run("key of another app is a conflict", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, app("1", "k1"))
		err := s.PutApp(ctx, app("2", "k2", "k1"))
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `"k1"`) {
			t.Fatalf("PutApp with another app's key = %v, want ErrConflict naming the key", err)
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
		if got := keyNames(mustByID(t, s, "1").Keys); got != "kept,new" {
			t.Errorf("keys after replace %s, want kept,new", got)
		}
		if ids := appIDs(t, s, ""); ids != "1" {
			t.Errorf("replace made apps %s", ids)
		}
		// Dropped keys stay listed, revoked.
		if got := listed(t, s, "1"); got != "old-,kept,new" {
			t.Errorf("Keys lists %s, want old-,kept,new", got)
		}
		// A key freed by the replace can go to another app.
		mustPut(t, s, app("2", "old"))
		wantByKey(t, s, "old", "2")
		if got := listed(t, s, "2"); got != "old" {
			t.Errorf("Keys(2) lists %s", got)
		}
		// ...and is then no longer the first app's to take back.
		if err := s.PutApp(ctx, app("1", "old")); !errors.Is(err, ErrConflict) {
			t.Errorf("taking back a key another app now holds = %v, want ErrConflict", err)
		}
	})

	t.Run("re-putting a revoked key reactivates it", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, app("1", "k1", "k2"))
		mustPut(t, s, app("1", "k2"))
		a := app("1", "k2", "k1")
		a.Keys[1].Secret = NewSecret("fresh-secret-xyz9")
		mustPut(t, s, a)
		got := wantByKey(t, s, "k1", "1")
		if sec, _ := got.SecretFor("k1"); sec.Reveal() != "fresh-secret-xyz9" {
			t.Errorf("reactivated key kept its old secret")
		}
		if got := listed(t, s, "1"); got != "k1,k2" {
			t.Errorf("Keys lists %s, want k1,k2 (one entry per key)", got)
		}
		infos, _ := s.Keys(ctx, "1")
		if infos[0].SecretLast4 != "xyz9" {
			t.Errorf("SecretLast4 %q does not follow the new secret", infos[0].SecretLast4)
		}
	})

	t.Run("failed replace keeps the old app", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, app("1", "k1"))
		mustPut(t, s, app("2", "k2"))
		replace := app("1", "k2", "k9")
		replace.Name = "replaced"
		if err := s.PutApp(ctx, replace); !errors.Is(err, ErrConflict) {
			t.Fatalf("replace with another app's key = %v, want ErrConflict", err)
		}
		wantByKey(t, s, "k1", "1")
		wantByKey(t, s, "k2", "2")
		wantByKey(t, s, "k9", "")
		if a := mustByID(t, s, "1"); a.Name != "app 1" {
			t.Errorf("failed replace changed the app: %+v", a)
		}
		if got := listed(t, s, "1"); got != "k1" {
			t.Errorf("failed replace changed the keys: %s", got)
		}
	})

	t.Run("invalid app", func(t *testing.T) {
		s := newStore(t)
		long := app("1", "k1")
		long.Name = strings.Repeat("n", 201)
		badTenant := app("1", "k1")
		badTenant.TenantID = "Bad"
		for _, tt := range []struct {
			app   *App
			names string // the error names this
		}{
			{app("", "k1"), "id"},
			{app("UPPER", "k1"), `id "UPPER"`},
			{app("1"), "key is required"},
			{app("1", "bad key"), `key "bad key"`},
			{app("1", "k1", "k1"), `key "k1" is listed twice`},
			{&App{ID: "1", Keys: []Key{{Key: "k1"}}}, `secret of key "k1"`},
			{&App{ID: "1", Keys: []Key{{Key: "k1", Secret: NewSecret("s")}}, Settings: Settings{Limits: Limits{MaxConnections: -1}}}, "settings.limits.max_connections"},
			{long, "name"},
			{badTenant, "tenant_id"},
		} {
			err := s.PutApp(ctx, tt.app)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.names) {
				t.Errorf("PutApp(%+v) = %v, want ErrInvalid naming %s", tt.app, err, tt.names)
			}
		}
		if ids := appIDs(t, s, ""); ids != "" {
			t.Errorf("invalid apps were stored: %s", ids)
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
		got := mustByID(t, s, "1")
		if got.Name != "app 1" || got.Keys[0].Key != "k1" || !got.Settings.Features.ClientEventsEnabled() {
			t.Errorf("stored app changed with the caller's value: %+v", got)
		}
		if a.Settings.Limits.MaxPayloadBytes != 0 || a.TenantID != "" {
			t.Errorf("PutApp filled defaults into the caller's app")
		}
		wantByKey(t, s, "k9", "")
	})

	t.Run("put is idempotent", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, app("1", "k1", "k2"))
		before, err := s.Keys(ctx, "1")
		if err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, app("1", "k1", "k2"))
		after, err := s.Keys(ctx, "1")
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != 2 || after[0].RevokedAt != nil || after[1].RevokedAt != nil {
			t.Fatalf("Keys after a second identical PutApp: %+v", after)
		}
		for i := range after {
			if after[i].Key != before[i].Key || !after[i].CreatedAt.Equal(before[i].CreatedAt) {
				t.Errorf("key %d changed: %+v, then %+v", i, before[i], after[i])
			}
		}
		if a := mustByID(t, s, "1"); keyNames(a.Keys) != "k1,k2" || a.Name != "app 1" {
			t.Errorf("AppByID after a second PutApp = %+v", a)
		}
		if ts, _ := s.Tenants(ctx); len(ts) != 1 {
			t.Errorf("%d tenants after putting twice, want the default one", len(ts))
		}
	})

	t.Run("tenant of an app", func(t *testing.T) {
		s := newStore(t)
		if err := s.CreateTenant(ctx, &Tenant{ID: "ta", Name: "A"}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateTenant(ctx, &Tenant{ID: "tb", Name: "B"}); err != nil {
			t.Fatal(err)
		}
		a1, a2, b1 := app("a1", "ka1"), app("a2", "ka2"), app("b1", "kb1")
		a1.TenantID, a2.TenantID, b1.TenantID = "ta", "ta", "tb"
		mustPut(t, s, a1)
		mustPut(t, s, a2)
		mustPut(t, s, b1)
		mustPut(t, s, app("d1", "kd1"))
		if got := mustByID(t, s, "b1").TenantID; got != "tb" {
			t.Errorf("TenantID %q, want tb", got)
		}
		if ids := appIDs(t, s, "ta"); ids != "a1,a2" {
			t.Errorf("Apps(ta) = %s, want a1,a2", ids)
		}
		if ids := appIDs(t, s, "tb"); ids != "b1" {
			t.Errorf("Apps(tb) = %s, want b1", ids)
		}
		if ids := appIDs(t, s, "nobody"); ids != "" {
			t.Errorf("Apps(nobody) = %s", ids)
		}
		if ids := appIDs(t, s, ""); ids != "a1,a2,b1,d1" {
			t.Errorf("Apps() = %s", ids)
		}

		// Only the default tenant is created on demand.
		orphan := app("o1", "ko1")
		orphan.TenantID = "nobody"
		if err := s.PutApp(ctx, orphan); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nobody") {
			t.Errorf("PutApp under an unknown tenant = %v, want ErrNotFound naming it", err)
		}
		// An app id is never taken over by another tenant.
		steal := app("a1", "ka1")
		steal.TenantID = "tb"
		if err := s.PutApp(ctx, steal); !errors.Is(err, ErrConflict) {
			t.Errorf("PutApp of tb over ta's app = %v, want ErrConflict", err)
		}
		if err := s.PutApp(ctx, app("a1", "ka1")); !errors.Is(err, ErrConflict) {
			t.Errorf("PutApp of default over ta's app = %v, want ErrConflict", err)
		}
		if got := mustByID(t, s, "a1"); got.TenantID != "ta" || got.Name != "app a1" {
			t.Errorf("ta's app changed: %+v", got)
		}
	})

	t.Run("update app", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, app("1", "k1", "k2"))
		got, err := s.UpdateApp(ctx, "1", func(a *App) error {
			if a.ID != "1" || keyNames(a.Keys) != "k1,k2" {
				t.Errorf("change got %+v", a)
			}
			a.Name, a.Enabled = "renamed", false
			a.Settings.Limits.MaxConnections = 5
			// None of these may stick.
			a.ID, a.TenantID, a.Suspended = "2", "other", true
			a.Keys = []Key{{Key: "k9", Secret: NewSecret("x")}}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		check := func(what string, a *App) {
			t.Helper()
			if a.ID != "1" || a.TenantID != DefaultTenantID || a.Suspended || keyNames(a.Keys) != "k1,k2" ||
				a.Keys[0].Secret.Reveal() != "secret-of-k1" {
				t.Errorf("%s: id, tenant or keys changed: %+v", what, a)
			}
			if a.Name != "renamed" || a.Enabled || a.Settings.Limits.MaxConnections != 5 ||
				a.Settings.Limits.MaxPayloadBytes != DefaultMaxPayloadBytes {
				t.Errorf("%s: change not saved: %+v", what, a)
			}
		}
		check("UpdateApp", got)
		check("AppByID", mustByID(t, s, "1"))
		check("AppByKey", wantByKey(t, s, "k2", "1"))
		wantByKey(t, s, "k9", "")
		if _, err := s.AppByID(ctx, "2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdateApp changed the id: %v", err)
		}
		if got := listed(t, s, "1"); got != "k1,k2" {
			t.Errorf("UpdateApp changed Keys: %s", got)
		}

		errChange := errors.New("change refused")
		if _, err := s.UpdateApp(ctx, "1", func(a *App) error { a.Name = "no"; return errChange }); !errors.Is(err, errChange) {
			t.Errorf("UpdateApp with a failing change = %v, want its error", err)
		}
		_, err = s.UpdateApp(ctx, "1", func(a *App) error { a.Name = "no"; a.Settings.Limits.MaxBatchEvents = -1; return nil })
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "max_batch_events") {
			t.Errorf("UpdateApp to invalid settings = %v, want ErrInvalid naming the field", err)
		}
		if a := mustByID(t, s, "1"); a.Name != "renamed" {
			t.Errorf("a refused change was saved: %+v", a)
		}
		if _, err := s.UpdateApp(ctx, "nope", func(*App) error { t.Error("change called for a missing app"); return nil }); !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdateApp(nope) = %v, want ErrNotFound", err)
		}
	})

	t.Run("tenants", func(t *testing.T) {
		s := newStore(t)
		created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
		tb := &Tenant{ID: "tb", Name: "B", Plan: "pro", CreatedAt: created}
		if err := s.CreateTenant(ctx, tb); err != nil {
			t.Fatal(err)
		}
		tb.Name = "changed by the caller"
		if err := s.CreateTenant(ctx, &Tenant{ID: "ta", Name: "A", Plan: "free", Status: TenantSuspended}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateTenant(ctx, &Tenant{ID: "ta"}); !errors.Is(err, ErrConflict) {
			t.Errorf("CreateTenant of a taken id = %v, want ErrConflict", err)
		}
		for _, bad := range []*Tenant{{ID: ""}, {ID: "Upper"}, {ID: strings.Repeat("t", 33)}, {ID: "tc", Status: "deleted"}} {
			if err := s.CreateTenant(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("CreateTenant(%+v) = %v, want ErrInvalid", bad, err)
			}
		}

		got, err := s.Tenant(ctx, "tb")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != "tb" || got.Name != "B" || got.Plan != "pro" || got.Status != TenantActive || !got.CreatedAt.Equal(created) {
			t.Errorf("Tenant(tb) = %+v", got)
		}
		if _, err := s.Tenant(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Tenant(nope) = %v, want ErrNotFound", err)
		}
		all, err := s.Tenants(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all[0].ID != "ta" || all[0].Status != TenantSuspended || all[1].ID != "tb" || all[0].CreatedAt.IsZero() {
			t.Errorf("Tenants = %+v, want ta (suspended), tb", all)
		}

		if err := s.SetTenantStatus(ctx, "ta", "deleted"); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetTenantStatus(deleted) = %v, want ErrInvalid", err)
		}
		if err := s.SetTenantStatus(ctx, "nope", TenantSuspended); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetTenantStatus(nope) = %v, want ErrNotFound", err)
		}
		if err := s.SetTenantStatus(ctx, "ta", TenantActive); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Tenant(ctx, "ta"); got.Status != TenantActive {
			t.Errorf("status %q after SetTenantStatus(active)", got.Status)
		}
	})

	t.Run("suspended tenant", func(t *testing.T) {
		s := newStore(t)
		if err := s.CreateTenant(ctx, &Tenant{ID: "ta"}); err != nil {
			t.Fatal(err)
		}
		a := app("1", "k1")
		a.TenantID = "ta"
		mustPut(t, s, a)
		mustPut(t, s, app("2", "k2"))
		if got := wantByKey(t, s, "k1", "1"); got.Suspended || !got.Active() {
			t.Fatalf("app of an active tenant: %+v", got)
		}
		if err := s.SetTenantStatus(ctx, "ta", TenantSuspended); err != nil {
			t.Fatal(err)
		}
		if got := wantByKey(t, s, "k1", "1"); !got.Suspended || got.Active() {
			t.Errorf("AppByKey of a suspended tenant's app: Suspended %v", got.Suspended)
		}
		if got := mustByID(t, s, "1"); !got.Suspended {
			t.Errorf("AppByID of a suspended tenant's app: Suspended %v", got.Suspended)
		}
		if apps, _ := s.Apps(ctx, "ta"); len(apps) != 1 || !apps[0].Suspended {
			t.Errorf("Apps(ta) of a suspended tenant: %+v", apps)
		}
		if got := mustByID(t, s, "2"); got.Suspended {
			t.Errorf("another tenant's app is suspended too")
		}
		if got, err := s.UpdateApp(ctx, "1", func(a *App) error { a.Name = "x"; return nil }); err != nil || !got.Suspended {
			t.Errorf("UpdateApp of a suspended tenant's app = %+v, %v", got, err)
		}
		if err := s.SetTenantStatus(ctx, "ta", TenantActive); err != nil {
			t.Fatal(err)
		}
		if got := wantByKey(t, s, "k1", "1"); got.Suspended || !got.Active() || got.Name != "x" {
			t.Errorf("app after reactivation: %+v", got)
		}
	})

	t.Run("create key", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, app("1", "k1"))
		k, err := s.CreateKey(ctx, "1")
		if err != nil {
			t.Fatal(err)
		}
		if !validKey(k.Key) || len(k.Secret.Reveal()) < 32 {
			t.Fatalf("CreateKey returned key %q with a %d-character secret", k.Key, len(k.Secret.Reveal()))
		}
		got := wantByKey(t, s, k.Key, "1")
		if sec, ok := got.SecretFor(k.Key); !ok || sec.Reveal() != k.Secret.Reveal() {
			t.Errorf("looked-up app does not hold the new secret")
		}
		wantByKey(t, s, "k1", "1")
		infos, err := s.Keys(ctx, "1")
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 2 || infos[1].Key != k.Key || infos[1].SecretLast4 != Last4(k.Secret) || infos[1].RevokedAt != nil {
			t.Errorf("Keys after CreateKey = %+v", infos)
		}
		if _, err := s.CreateKey(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("CreateKey(nope) = %v, want ErrNotFound", err)
		}
	})

	t.Run("revoke key", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, app("1", "k1", "k2"))
		mustPut(t, s, app("2", "k3"))
		if err := s.RevokeKey(ctx, "1", "k1"); err != nil {
			t.Fatal(err)
		}
		wantByKey(t, s, "k1", "")
		if got := keyNames(wantByKey(t, s, "k2", "1").Keys); got != "k2" {
			t.Errorf("keys after revoke %s, want k2", got)
		}
		infos, err := s.Keys(ctx, "1")
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 2 || infos[0].Key != "k1" || infos[0].RevokedAt == nil || infos[0].RevokedAt.Before(infos[0].CreatedAt) ||
			infos[1].RevokedAt != nil || infos[0].SecretLast4 != "f-k1" {
			t.Errorf("Keys after revoke = %+v, want k1 revoked (still listed), k2 active", infos)
		}

		if err := s.RevokeKey(ctx, "1", "k1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoking a revoked key = %v, want ErrNotFound", err)
		}
		if err := s.RevokeKey(ctx, "1", "k2"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "last") {
			t.Errorf("revoking the last key = %v, want ErrInvalid", err)
		}
		wantByKey(t, s, "k2", "1")
		if err := s.RevokeKey(ctx, "1", "zz"); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoking an unknown key = %v, want ErrNotFound", err)
		}
		if err := s.RevokeKey(ctx, "nope", "k2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoking a key of an unknown app = %v, want ErrNotFound", err)
		}
		// An app cannot revoke another app's key.
		mustPut(t, s, app("2", "k3", "k4"))
		if err := s.RevokeKey(ctx, "2", "k2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("app 2 revoking app 1's key = %v, want ErrNotFound", err)
		}
		wantByKey(t, s, "k2", "1")
	})

	t.Run("keys of an unknown app", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, app("1", "k1"))
		if _, err := s.Keys(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Keys(nope) = %v, want ErrNotFound", err)
		}
	})

	t.Run("concurrent use", func(t *testing.T) {
		s := newStore(t)
		const rounds = 60
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				id := fmt.Sprint(w)
				for i := range rounds {
					if err := s.PutApp(ctx, app(id, fmt.Sprintf("k%d-%d", w, i%3))); err != nil {
						t.Error(err)
						return
					}
					if _, err := s.AppByID(ctx, id); err != nil {
						t.Error(err)
						return
					}
					_, _ = s.AppByKey(ctx, fmt.Sprintf("k%d-%d", (w+1)%4, i%3))
					_, _ = s.Apps(ctx, "")
				}
			})
		}
		wg.Wait()
		last := (rounds - 1) % 3 // only the last key of each app remains
		for w := range 4 {
			wantByKey(t, s, fmt.Sprintf("k%d-%d", w, last), fmt.Sprint(w))
			wantByKey(t, s, fmt.Sprintf("k%d-%d", w, (last+1)%3), "")
		}
	})

	t.Run("concurrent PutApp of the same apps", func(t *testing.T) {
		// Nodes starting at once put the same configured apps.
		s := newStore(t)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				apps := []*App{app("1", "k1"), app("2", "k2a", "k2b"), app("3", "k3")}
				if err := PutApps(ctx, s, apps); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ids := appIDs(t, s, DefaultTenantID); ids != "1,2,3" {
			t.Errorf("apps %s", ids)
		}
		if got := listed(t, s, "2"); got != "k2a,k2b" {
			t.Errorf("Keys(2) lists %s", got)
		}
		if ts, _ := s.Tenants(ctx); len(ts) != 1 {
			t.Errorf("%d tenants, want only the default", len(ts))
		}
	})

	t.Run("PutApps stops at the first error", func(t *testing.T) {
		s := newStore(t)
		err := PutApps(ctx, s, []*App{app("1", "k1"), app("2", "k1"), app("3", "k3")})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("PutApps = %v, want ErrConflict", err)
		}
		if want := "app 2: "; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("PutApps error %q does not name app 2 first", err)
		}
		wantByKey(t, s, "k3", "")
	})

	t.Run("a cancelled context fails", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, app("1", "k1"))
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		// The memory store never waits, so it may answer; a store that
		// does I/O must give up, and must not report a miss.
		if _, err := s.AppByID(cctx, "1"); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("AppByID with a cancelled context = %v, want nil or context.Canceled", err)
		}
		if err := s.PutApp(cctx, app("3", "k3")); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("PutApp with a cancelled context = %v, want nil or context.Canceled", err)
		}
	})
}

func TestMemoryStore(t *testing.T) {
	testStore(t, func(*testing.T) Store { return NewMemoryStore() })
}

func TestCache_MemoryStore(t *testing.T) {
	testStore(t, func(*testing.T) Store { return NewCache(NewMemoryStore(), 0) })
}

// The secret is never in a KeyInfo: Keys is what read endpoints list
// (SEC-4).
func TestKeyInfo_SEC4_NoSecret(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore()
	if err := s.PutApp(ctx, &App{ID: "1", Keys: []Key{{Key: "k1", Secret: NewSecret(canary)}}}); err != nil {
		t.Fatal(err)
	}
	infos, err := s.Keys(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%+v", infos); strings.Contains(got, canary[:len(canary)-4]) {
		t.Errorf("Keys reveals the secret: %s", got)
	}
	if infos[0].SecretLast4 != canary[len(canary)-4:] {
		t.Errorf("SecretLast4 = %q", infos[0].SecretLast4)
	}
	if !slices.ContainsFunc(infos, func(k KeyInfo) bool { return k.Key == "k1" }) {
		t.Errorf("Keys = %+v", infos)
	}
}
