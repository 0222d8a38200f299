package tenants

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/dbtest"
	"github.com/jackc/pgx/v5"
)

// testUsers is the contract every Users must meet. newUsers returns an empty
// Users together with the tenant store its memberships refer to.
func testUsers(t *testing.T, newUsers func(t *testing.T) (Users, Store)) {
	ctx := context.Background()

	mustUser := func(t *testing.T, us Users, email string) *User {
		t.Helper()
		u := NewUser(email, "hash-of-"+email)
		if err := us.CreateUser(ctx, u); err != nil {
			t.Fatalf("CreateUser(%s): %v", email, err)
		}
		return u
	}
	mustTenant := func(t *testing.T, s Store, id string) {
		t.Helper()
		if err := s.CreateTenant(ctx, &Tenant{ID: id, Name: "tenant " + id}); err != nil {
			t.Fatalf("CreateTenant(%s): %v", id, err)
		}
	}
	mustSet := func(t *testing.T, us Users, userID, tenantID string, role Role) {
		t.Helper()
		if err := us.SetMembership(ctx, Membership{UserID: userID, TenantID: tenantID, Role: role}); err != nil {
			t.Fatalf("SetMembership(%s, %s, %s): %v", userID, tenantID, role, err)
		}
	}
	wantErr := func(t *testing.T, what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s = %v, want %v", what, err, want)
		}
	}
	// members lists a tenant's memberships as "user:role,...".
	members := func(t *testing.T, us Users, tenantID string) string {
		t.Helper()
		ms, err := us.Members(ctx, tenantID)
		if err != nil {
			t.Fatalf("Members(%s): %v", tenantID, err)
		}
		var out []string
		for _, m := range ms {
			if m.TenantID != tenantID {
				t.Errorf("Members(%s) lists %+v", tenantID, m)
			}
			out = append(out, m.UserID+":"+string(m.Role))
		}
		return strings.Join(out, ",")
	}
	hour := func(n time.Duration) time.Time { return time.Now().Add(n * time.Hour).Truncate(time.Microsecond) }
	newSession := func(userID string) Session {
		return Session{ID: randomHex(32), UserID: userID, CSRF: randomHex(32), ExpiresAt: hour(1)}
	}
	mustSession := func(t *testing.T, us Users, s Session) {
		t.Helper()
		if err := us.CreateSession(ctx, s); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
	}
	live := func(t *testing.T, us Users, id string) bool {
		t.Helper()
		s, err := us.Session(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound) && s == nil:
			return false
		case err != nil:
			t.Fatalf("Session: %v", err)
		}
		return true
	}

	t.Run("create and look up", func(t *testing.T) {
		us, _ := newUsers(t)
		u := NewUser("  Alice@Example.COM ", "hash")
		if !validUserID(u.ID) || u.Email != "alice@example.com" || u.PasswordHash != "hash" {
			t.Fatalf("NewUser = %+v", u)
		}
		u.Disabled = true
		if err := us.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if u.CreatedAt.IsZero() {
			t.Error("CreateUser left CreatedAt zero")
		}
		for _, email := range []string{"alice@example.com", "ALICE@EXAMPLE.COM", " Alice@example.com\t"} {
			got, err := us.UserByEmail(ctx, email)
			if err != nil {
				t.Fatalf("UserByEmail(%q): %v", email, err)
			}
			if got.ID != u.ID || got.Email != u.Email || got.PasswordHash != "hash" || !got.Disabled ||
				got.PlatformAdmin || !got.CreatedAt.Equal(u.CreatedAt) {
				t.Errorf("UserByEmail(%q) = %+v, want %+v", email, got, u)
			}
		}
		got, err := us.UserByID(ctx, u.ID)
		if err != nil || got.Email != "alice@example.com" || !got.CreatedAt.Equal(u.CreatedAt) {
			t.Fatalf("UserByID = %+v, %v", got, err)
		}
		// Returned users are copies.
		got.Email, got.PlatformAdmin = "mallory@example.com", true
		if again, _ := us.UserByID(ctx, u.ID); again.Email != "alice@example.com" || again.PlatformAdmin {
			t.Errorf("changing a returned user changed the store: %+v", again)
		}

		when := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
		b := NewUser("bob@example.com", "hash")
		b.CreatedAt, b.PlatformAdmin = when, true
		if err := us.CreateUser(ctx, b); err != nil {
			t.Fatal(err)
		}
		if got, err := us.UserByEmail(ctx, "bob@example.com"); err != nil || !got.CreatedAt.Equal(when) || !got.PlatformAdmin {
			t.Errorf("UserByEmail(bob) = %+v, %v; want CreatedAt %v and platform admin", got, err, when)
		}
		mustUser(t, us, "aaron@example.com")
		list, err := us.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var emails []string
		for _, u := range list {
			emails = append(emails, u.Email)
		}
		if want := []string{"aaron@example.com", "alice@example.com", "bob@example.com"}; !slices.Equal(emails, want) {
			t.Errorf("ListUsers emails %v, want %v", emails, want)
		}

		for _, email := range []string{"nobody@example.com", "", "a'--@x", "\xff@x"} {
			if got, err := us.UserByEmail(ctx, email); !errors.Is(err, ErrNotFound) || got != nil {
				t.Errorf("UserByEmail(%q) = %v, %v; want ErrNotFound", email, got, err)
			}
		}
		for _, id := range []string{"u000000000000", "", "x", "u' OR '1'='1", "\xff"} {
			if got, err := us.UserByID(ctx, id); !errors.Is(err, ErrNotFound) || got != nil {
				t.Errorf("UserByID(%q) = %v, %v; want ErrNotFound", id, got, err)
			}
		}
	})

	t.Run("empty", func(t *testing.T) {
		us, _ := newUsers(t)
		if list, err := us.ListUsers(ctx); err != nil || list == nil || len(list) != 0 {
			t.Errorf("ListUsers = %#v, %v; want an empty list", list, err)
		}
		if ms, err := us.Memberships(ctx, "u000000000000"); err != nil || ms == nil || len(ms) != 0 {
			t.Errorf("Memberships = %#v, %v; want an empty list", ms, err)
		}
		if ms, err := us.Members(ctx, "t1"); err != nil || ms == nil || len(ms) != 0 {
			t.Errorf("Members = %#v, %v; want an empty list", ms, err)
		}
	})

	t.Run("duplicates", func(t *testing.T) {
		us, _ := newUsers(t)
		a := mustUser(t, us, "alice@example.com")
		wantErr(t, "CreateUser(same email, other case)", us.CreateUser(ctx, NewUser("ALICE@example.com ", "h")), ErrConflict)
		same := NewUser("other@example.com", "h")
		same.ID = a.ID
		wantErr(t, "CreateUser(same id)", us.CreateUser(ctx, same), ErrConflict)
		if list, _ := us.ListUsers(ctx); len(list) != 1 {
			t.Errorf("%d users after refused duplicates, want 1", len(list))
		}
	})

	t.Run("validation", func(t *testing.T) {
		us, _ := newUsers(t)
		for _, email := range []string{"", "@", "a@", "@b", "ab", "a@b@c", "no-at.example.com", "a b@example.com",
			"a@exa\tmple.com", "a\x00@b", "\xff@example.com", strings.Repeat("a", 250) + "@b.co"} {
			wantErr(t, fmt.Sprintf("CreateUser(email %q)", email), us.CreateUser(ctx, NewUser(email, "h")), ErrInvalid)
		}
		for _, id := range []string{"", "u", "u00000000000", "u0000000000000", "U000000000000", "uABCDEF000000", "x000000000000", "u00000000000g"} {
			u := NewUser("id@example.com", "h")
			u.ID = id
			wantErr(t, fmt.Sprintf("CreateUser(id %q)", id), us.CreateUser(ctx, u), ErrInvalid)
		}
		wantErr(t, "CreateUser(empty hash)", us.CreateUser(ctx, NewUser("h@example.com", "")), ErrInvalid)
		if list, _ := us.ListUsers(ctx); len(list) != 0 {
			t.Errorf("invalid users were stored: %v", list)
		}
		// The longest allowed address, and the shortest.
		mustUser(t, us, strings.Repeat("a", 250)+"@b.c")
		mustUser(t, us, "a@b")
	})

	t.Run("set password and platform admin", func(t *testing.T) {
		us, _ := newUsers(t)
		u := mustUser(t, us, "alice@example.com")
		if err := us.SetPassword(ctx, u.ID, "new-hash"); err != nil {
			t.Fatal(err)
		}
		if err := us.SetPlatformAdmin(ctx, u.ID, true); err != nil {
			t.Fatal(err)
		}
		if got, _ := us.UserByID(ctx, u.ID); got.PasswordHash != "new-hash" || !got.PlatformAdmin {
			t.Errorf("after SetPassword and SetPlatformAdmin: %+v", got)
		}
		if err := us.SetPlatformAdmin(ctx, u.ID, false); err != nil {
			t.Fatal(err)
		}
		if got, _ := us.UserByEmail(ctx, u.Email); got.PlatformAdmin || got.PasswordHash != "new-hash" {
			t.Errorf("after withdrawing platform admin: %+v", got)
		}
		wantErr(t, "SetPassword(empty)", us.SetPassword(ctx, u.ID, ""), ErrInvalid)
		wantErr(t, "SetPassword(unknown)", us.SetPassword(ctx, "u000000000000", "h"), ErrNotFound)
		wantErr(t, "SetPlatformAdmin(unknown)", us.SetPlatformAdmin(ctx, "u000000000000", true), ErrNotFound)
		wantErr(t, "SetPlatformAdmin(bad id)", us.SetPlatformAdmin(ctx, "bad", true), ErrNotFound)
	})

	t.Run("memberships", func(t *testing.T) {
		us, ts := newUsers(t)
		mustTenant(t, ts, "t2")
		mustTenant(t, ts, "t1")
		mustTenant(t, ts, "t10")
		a := mustUser(t, us, "a@example.com")
		b := mustUser(t, us, "b@example.com")
		mustSet(t, us, a.ID, "t2", RoleOwner)
		mustSet(t, us, a.ID, "t1", RoleViewer)
		mustSet(t, us, a.ID, "t10", RoleOperator)
		mustSet(t, us, b.ID, "t1", RoleOwner)

		ms, err := us.Memberships(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := []Membership{{a.ID, "t1", RoleViewer}, {a.ID, "t10", RoleOperator}, {a.ID, "t2", RoleOwner}}
		if !slices.Equal(ms, want) {
			t.Errorf("Memberships(a) = %v, want %v (by tenant id)", ms, want)
		}
		first, second := min(a.ID, b.ID), max(a.ID, b.ID)
		roleOf := map[string]Role{a.ID: RoleViewer, b.ID: RoleOwner}
		if got, want := members(t, us, "t1"), fmt.Sprintf("%s:%s,%s:%s", first, roleOf[first], second, roleOf[second]); got != want {
			t.Errorf("Members(t1) = %s, want %s (by user id)", got, want)
		}

		// Changing a role, and setting the same role again.
		mustSet(t, us, a.ID, "t1", RoleOperator)
		mustSet(t, us, a.ID, "t1", RoleOperator)
		if ms, _ := us.Memberships(ctx, a.ID); ms[0].Role != RoleOperator || len(ms) != 3 {
			t.Errorf("after changing the role: %v", ms)
		}

		for _, role := range []Role{"", "admin", "Owner", "owner "} {
			wantErr(t, fmt.Sprintf("SetMembership(role %q)", role),
				us.SetMembership(ctx, Membership{UserID: a.ID, TenantID: "t1", Role: role}), ErrInvalid)
		}
		wantErr(t, "SetMembership(unknown user)", us.SetMembership(ctx, Membership{UserID: "u000000000000", TenantID: "t1", Role: RoleViewer}), ErrNotFound)
		wantErr(t, "SetMembership(bad user id)", us.SetMembership(ctx, Membership{UserID: "bad", TenantID: "t1", Role: RoleViewer}), ErrNotFound)
		wantErr(t, "SetMembership(unknown tenant)", us.SetMembership(ctx, Membership{UserID: a.ID, TenantID: "t3", Role: RoleViewer}), ErrNotFound)
		wantErr(t, "SetMembership(bad tenant id)", us.SetMembership(ctx, Membership{UserID: a.ID, TenantID: "T 1", Role: RoleViewer}), ErrNotFound)

		if err := us.RemoveMembership(ctx, a.ID, "t1"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "RemoveMembership(again)", us.RemoveMembership(ctx, a.ID, "t1"), ErrNotFound)
		wantErr(t, "RemoveMembership(unknown tenant)", us.RemoveMembership(ctx, a.ID, "t3"), ErrNotFound)
		wantErr(t, "RemoveMembership(unknown user)", us.RemoveMembership(ctx, "u000000000000", "t1"), ErrNotFound)
		if got := members(t, us, "t1"); got != b.ID+":owner" {
			t.Errorf("Members(t1) after removal = %s", got)
		}
		if ms, _ := us.Memberships(ctx, b.ID); len(ms) != 1 {
			t.Errorf("Memberships(b) = %v", ms)
		}
	})

	t.Run("last owner", func(t *testing.T) {
		us, ts := newUsers(t)
		mustTenant(t, ts, "t1")
		a := mustUser(t, us, "a@example.com")
		b := mustUser(t, us, "b@example.com")
		c := mustUser(t, us, "c@example.com")

		// A tenant without owners may get members of any role.
		mustSet(t, us, c.ID, "t1", RoleViewer)
		mustSet(t, us, a.ID, "t1", RoleOwner)
		for _, role := range []Role{RoleOperator, RoleViewer} {
			wantErr(t, "demoting the last owner to "+string(role),
				us.SetMembership(ctx, Membership{UserID: a.ID, TenantID: "t1", Role: role}), ErrConflict)
		}
		wantErr(t, "removing the last owner", us.RemoveMembership(ctx, a.ID, "t1"), ErrConflict)
		mustSet(t, us, a.ID, "t1", RoleOwner) // staying owner is no demotion

		// With a second owner, either may go.
		mustSet(t, us, b.ID, "t1", RoleOwner)
		mustSet(t, us, a.ID, "t1", RoleViewer)
		wantErr(t, "demoting the new last owner", us.SetMembership(ctx, Membership{UserID: b.ID, TenantID: "t1", Role: RoleViewer}), ErrConflict)
		mustSet(t, us, a.ID, "t1", RoleOwner)
		if err := us.RemoveMembership(ctx, b.ID, "t1"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "removing the last owner again", us.RemoveMembership(ctx, a.ID, "t1"), ErrConflict)
		// Non-owners come and go freely.
		if err := us.RemoveMembership(ctx, c.ID, "t1"); err != nil {
			t.Fatal(err)
		}
		if got := members(t, us, "t1"); got != a.ID+":owner" {
			t.Errorf("Members(t1) = %s", got)
		}
	})

	t.Run("last owner concurrently", func(t *testing.T) {
		us, ts := newUsers(t)
		a := mustUser(t, us, "a@example.com")
		b := mustUser(t, us, "b@example.com")
		for round := range 10 {
			tenant := fmt.Sprintf("t%d", round)
			mustTenant(t, ts, tenant)
			mustSet(t, us, a.ID, tenant, RoleOwner)
			mustSet(t, us, b.ID, tenant, RoleOwner)
			// Each owner demotes (even rounds) or removes (odd rounds) the
			// other, at once.
			var (
				start sync.WaitGroup
				done  sync.WaitGroup
				errs  [2]error
			)
			start.Add(1)
			for i, id := range []string{a.ID, b.ID} {
				done.Go(func() {
					start.Wait()
					if round%2 == 0 {
						errs[i] = us.SetMembership(ctx, Membership{UserID: id, TenantID: tenant, Role: RoleOperator})
					} else {
						errs[i] = us.RemoveMembership(ctx, id, tenant)
					}
				})
			}
			start.Done()
			done.Wait()
			wins := 0
			for _, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, ErrConflict):
					t.Errorf("round %d: %v, want nil or ErrConflict", round, err)
				}
			}
			ms, err := us.Members(ctx, tenant)
			if err != nil {
				t.Fatal(err)
			}
			owners := 0
			for _, m := range ms {
				if m.Role == RoleOwner {
					owners++
				}
			}
			if wins != 1 || owners != 1 {
				t.Errorf("round %d: %d changes succeeded and %d owners are left (%v), want 1 and 1", round, wins, owners, ms)
			}
		}
	})

	t.Run("sessions", func(t *testing.T) {
		us, _ := newUsers(t)
		a := mustUser(t, us, "a@example.com")
		b := mustUser(t, us, "b@example.com")

		s := newSession(a.ID)
		s.CreatedAt, s.LastSeen = hour(-1), hour(-1)
		mustSession(t, us, s)
		got, err := us.Session(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != s.ID || got.UserID != a.ID || got.CSRF != s.CSRF || !got.CreatedAt.Equal(s.CreatedAt) ||
			!got.LastSeen.Equal(s.LastSeen) || !got.ExpiresAt.Equal(s.ExpiresAt) {
			t.Errorf("Session = %+v, want %+v", got, s)
		}
		wantErr(t, "CreateSession(same id)", us.CreateSession(ctx, s), ErrConflict)

		// Zero times mean now.
		before := time.Now().Add(-time.Second)
		fresh := newSession(a.ID)
		mustSession(t, us, fresh)
		if got, err := us.Session(ctx, fresh.ID); err != nil || got.CreatedAt.Before(before) || got.LastSeen.Before(before) {
			t.Errorf("Session(fresh) = %+v, %v; want CreatedAt and LastSeen filled with now", got, err)
		}

		// Touch moves LastSeen forward only.
		seen := hour(0)
		if err := us.TouchSession(ctx, s.ID, seen); err != nil {
			t.Fatal(err)
		}
		if err := us.TouchSession(ctx, s.ID, seen.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got, _ := us.Session(ctx, s.ID); !got.LastSeen.Equal(seen) || !got.CreatedAt.Equal(s.CreatedAt) {
			t.Errorf("after touches: LastSeen %v, CreatedAt %v; want %v, %v", got.LastSeen, got.CreatedAt, seen, s.CreatedAt)
		}
		wantErr(t, "TouchSession(unknown)", us.TouchSession(ctx, "unknown", seen), ErrNotFound)

		// An expired session is gone, and cannot be touched back to life.
		old := newSession(a.ID)
		old.ExpiresAt = time.Now().Add(-time.Second)
		mustSession(t, us, old)
		if live(t, us, old.ID) {
			t.Error("an expired session is returned")
		}
		wantErr(t, "TouchSession(expired)", us.TouchSession(ctx, old.ID, time.Now()), ErrNotFound)

		for _, id := range []string{"unknown", "", s.ID[:10], strings.ToUpper(s.ID), "\xff"} {
			if live(t, us, id) {
				t.Errorf("Session(%q) found", id)
			}
		}

		// Deleting one, an unknown one, and all of a user's.
		other := newSession(b.ID)
		mustSession(t, us, other)
		if err := us.DeleteSession(ctx, fresh.ID); err != nil {
			t.Fatal(err)
		}
		if err := us.DeleteSession(ctx, "unknown"); err != nil {
			t.Errorf("DeleteSession(unknown) = %v", err)
		}
		if live(t, us, fresh.ID) || !live(t, us, s.ID) {
			t.Error("DeleteSession deleted the wrong sessions")
		}
		third := newSession(a.ID)
		mustSession(t, us, third)
		if err := us.DeleteUserSessions(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if live(t, us, s.ID) || live(t, us, third.ID) || !live(t, us, other.ID) {
			t.Error("DeleteUserSessions did not delete exactly the user's sessions")
		}
		if err := us.DeleteUserSessions(ctx, "u000000000000"); err != nil {
			t.Errorf("DeleteUserSessions(unknown) = %v", err)
		}

		// A password change signs the user out everywhere, and only that
		// user.
		again, another := newSession(a.ID), newSession(a.ID)
		mustSession(t, us, again)
		mustSession(t, us, another)
		if err := us.SetPassword(ctx, a.ID, "new-hash"); err != nil {
			t.Fatal(err)
		}
		if live(t, us, again.ID) || live(t, us, another.ID) || !live(t, us, other.ID) {
			t.Error("SetPassword did not sign out exactly the user's sessions")
		}

		wantErr(t, "CreateSession(unknown user)", us.CreateSession(ctx, newSession("u000000000000")), ErrNotFound)
		wantErr(t, "CreateSession(bad user id)", us.CreateSession(ctx, newSession("bad")), ErrNotFound)
		for name, change := range map[string]func(*Session){
			"no id":     func(s *Session) { s.ID = "" },
			"no user":   func(s *Session) { s.UserID = "" },
			"no CSRF":   func(s *Session) { s.CSRF = "" },
			"no expiry": func(s *Session) { s.ExpiresAt = time.Time{} },
		} {
			s := newSession(a.ID)
			change(&s)
			wantErr(t, "CreateSession("+name+")", us.CreateSession(ctx, s), ErrInvalid)
		}
	})

	t.Run("invites", func(t *testing.T) {
		us, s := newUsers(t)
		mustTenant(t, s, "acme")
		mustTenant(t, s, "globex")
		now := time.Now().Truncate(time.Microsecond)
		newInvite := func(token, tenantID, email string) Invite {
			return Invite{Token: token, TenantID: tenantID, Email: email, Role: RoleOperator, CreatedBy: "user:owner@acme.test",
				CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		}
		if invs, err := us.Invites(ctx, "acme"); err != nil || len(invs) != 0 {
			t.Fatalf("Invites(empty) = %v, %v", invs, err)
		}
		a := newInvite("token-a", "acme", " Ann@Example.COM ")
		if err := us.CreateInvite(ctx, a); err != nil {
			t.Fatal(err)
		}
		b := newInvite("token-b", "acme", "bob@example.com")
		b.CreatedAt = now.Add(time.Second)
		if err := us.CreateInvite(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := us.CreateInvite(ctx, newInvite("token-g", "globex", "gil@example.com")); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "CreateInvite(same token)", us.CreateInvite(ctx, newInvite("token-a", "acme", "x@example.com")), ErrConflict)
		wantErr(t, "CreateInvite(unknown tenant)", us.CreateInvite(ctx, newInvite("token-x", "nowhere", "x@example.com")), ErrNotFound)
		for name, change := range map[string]func(*Invite){
			"no token":  func(i *Invite) { i.Token = "" },
			"bad email": func(i *Invite) { i.Email = "not an email" },
			"bad role":  func(i *Invite) { i.Role = "admin" },
			"no expiry": func(i *Invite) { i.ExpiresAt = time.Time{} },
		} {
			inv := newInvite("token-v", "acme", "v@example.com")
			change(&inv)
			wantErr(t, "CreateInvite("+name+")", us.CreateInvite(ctx, inv), ErrInvalid)
		}

		invs, err := us.Invites(ctx, "acme")
		if err != nil || len(invs) != 2 || invs[0].Email != "ann@example.com" || invs[1].Email != "bob@example.com" ||
			invs[0].Token != "" || invs[0].Role != RoleOperator || !invs[0].ExpiresAt.Equal(now.Add(time.Hour)) ||
			invs[0].CreatedBy != "user:owner@acme.test" {
			t.Fatalf("Invites(acme) = %+v, %v", invs, err)
		}

		got, err := us.Invite(ctx, "token-a", now)
		if err != nil || got.Email != "ann@example.com" || got.TenantID != "acme" || got.Token != "token-a" {
			t.Fatalf("Invite = %+v, %v", got, err)
		}
		_, err = us.Invite(ctx, "token-a", now.Add(time.Hour))
		wantErr(t, "Invite(expired)", err, ErrNotFound)
		_, err = us.ConsumeInvite(ctx, "token-a", now.Add(time.Hour))
		wantErr(t, "ConsumeInvite(expired)", err, ErrNotFound)
		_, err = us.ConsumeInvite(ctx, "unknown", now)
		wantErr(t, "ConsumeInvite(unknown)", err, ErrNotFound)

		got, err = us.ConsumeInvite(ctx, "token-a", now)
		if err != nil || got.Email != "ann@example.com" || got.Role != RoleOperator || got.TenantID != "acme" {
			t.Fatalf("ConsumeInvite = %+v, %v", got, err)
		}
		_, err = us.ConsumeInvite(ctx, "token-a", now)
		wantErr(t, "ConsumeInvite(used)", err, ErrNotFound)
		_, err = us.Invite(ctx, "token-a", now)
		wantErr(t, "Invite(used)", err, ErrNotFound)
		if invs, err := us.Invites(ctx, "acme"); err != nil || len(invs) != 1 || invs[0].Email != "bob@example.com" {
			t.Errorf("Invites after a use = %+v, %v", invs, err)
		}

		// Of concurrent consumes of one invite, exactly one wins.
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 8 {
			wg.Go(func() {
				if _, err := us.ConsumeInvite(ctx, "token-b", now); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !errors.Is(err, ErrNotFound) {
					t.Errorf("concurrent ConsumeInvite: %v", err)
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Errorf("%d concurrent consumes won, want 1", wins)
		}
	})
}

func TestMemoryUsers(t *testing.T) {
	testUsers(t, func(*testing.T) (Users, Store) {
		s := NewMemoryStore()
		return NewMemoryUsers(s), s
	})
}

func TestPostgresUsers(t *testing.T) {
	testUsers(t, func(t *testing.T) (Users, Store) {
		pool := dbtest.Migrated(t)
		return NewPostgresUsers(pool), NewPostgresStore(pool, testKeyring(t))
	})
}

// No way of encoding, printing or logging a user shows its password hash.
func TestUser_PasswordHashNotPrinted(t *testing.T) {
	u := NewUser("a@example.com", "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHRzYWx0$"+canary)
	var out bytes.Buffer
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(b)
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		fmt.Fprintf(&out, format+"\n", u)
		fmt.Fprintf(&out, format+"\n", *u)
	}
	fmt.Fprintln(&out, []User{*u}, map[string]*User{"u": u}, struct{ U User }{*u})
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(h).Info("user", "user", u, "value", *u)
	}
	if strings.Contains(out.String(), canary) || strings.Contains(out.String(), hex.EncodeToString([]byte(canary))) {
		t.Errorf("the password hash was printed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "a@example.com") || !strings.Contains(out.String(), redacted) {
		t.Errorf("the user was not printed with its hash redacted:\n%s", out.String())
	}
}

// The memory store keeps no session's raw id either.
func TestMemoryUsers_SessionIDNotKept(t *testing.T) {
	ctx := context.Background()
	us := NewMemoryUsers(NewMemoryStore())
	u := NewUser("a@example.com", "h")
	if err := us.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	id := randomHex(32)
	if err := us.CreateSession(ctx, Session{ID: id, UserID: u.ID, CSRF: "c", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if len(us.sessions) != 1 {
		t.Fatalf("%d sessions", len(us.sessions))
	}
	for key, s := range us.sessions {
		if key != sha256.Sum256([]byte(id)) || s.ID != "" {
			t.Errorf("stored session %x: %+v; want the id's SHA-256 and no id", key, s)
		}
	}
}

// The sessions table holds only the SHA-256 of session ids, and sign-ins
// purge expired rows.
func TestPostgresUsers_SessionIDNotStored(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Migrated(t)
	us := NewPostgresUsers(pool)
	u := NewUser("a@example.com", "h")
	if err := us.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	expired := Session{ID: randomHex(32), UserID: u.ID, CSRF: "c1", ExpiresAt: time.Now().Add(-time.Minute)}
	id := randomHex(32)
	for _, s := range []Session{expired, {ID: id, UserID: u.ID, CSRF: "c2", ExpiresAt: time.Now().Add(time.Hour)}} {
		if err := us.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	rows, err := pool.Query(ctx, "SELECT id_sha256 FROM console_sessions")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(id))
	if len(keys) != 1 || !bytes.Equal(keys[0], sum[:]) {
		t.Fatalf("console_sessions ids %x, want only the live session's SHA-256 %x", keys, sum)
	}
	rows, err = pool.Query(ctx, "SELECT row_to_json(s)::text FROM console_sessions s")
	if err != nil {
		t.Fatal(err)
	}
	dump, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, form := range []string{id, hex.EncodeToString([]byte(id)), base64.StdEncoding.EncodeToString([]byte(id))} {
		if strings.Contains(strings.Join(dump, "\n"), form) {
			t.Errorf("console_sessions holds the raw session id: %s", dump)
		}
	}
}

// Every statement the store sends is parameterised; none is assembled with
// fmt (security.md §4, forbidden patterns).
func TestPostgresUsers_NoFormattedSQL(t *testing.T) {
	src, err := os.ReadFile("users_postgres.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, banned := range []string{"fmt.Sprint", "QueryExecModeSimpleProtocol", "strings.Replace"} {
		if bytes.Contains(src, []byte(banned)) {
			t.Errorf("users_postgres.go uses %s", banned)
		}
	}
}
