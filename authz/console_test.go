package authz

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/heraldrt/herald/tenants"
)

// Written out here rather than taken from console.go, so that a change to
// the table there fails the matrix below until this is changed too.
var (
	allPermissions = []Permission{"view", "broadcast", "debug", "apps.manage", "keys.manage",
		"policies.manage", "members.manage", "tenants.manage"}
	wantRolePermissions = map[tenants.Role][]Permission{
		"viewer":   {"view"},
		"operator": {"view", "broadcast", "debug"},
		"owner":    {"view", "broadcast", "debug", "apps.manage", "keys.manage", "policies.manage", "members.manage"},
	}
)

// Every combination of role in the user's tenant (none, each role, and
// roles no store would hold), platform admin or not, permission (each, and
// unknown ones), and tenant (the user's own or another) gets exactly the
// expected answer.
func TestConsoleRBAC_Matrix(t *testing.T) {
	r := NewConsoleRBAC()
	roles := []tenants.Role{"", tenants.RoleViewer, tenants.RoleOperator, tenants.RoleOwner,
		"admin", "Owner", tenants.Role(platformAdminSubject)}
	perms := append(slices.Clone(allPermissions), "", "delete", "VIEW", "*", "view ")
	cases, allowed := 0, 0
	for _, role := range roles {
		var memberships []tenants.Membership
		if role != "" {
			memberships = []tenants.Membership{{UserID: "u1", TenantID: "own", Role: role}}
		}
		for _, admin := range []bool{false, true} {
			for _, perm := range perms {
				for _, tenant := range []string{"own", "other", ""} {
					known := slices.Contains(allPermissions, perm)
					want := known && (admin || tenant == "own" && slices.Contains(wantRolePermissions[role], perm))
					got := r.Allowed(admin, memberships, tenant, perm)
					if got != want {
						t.Errorf("role %q, platform admin %t, %q in tenant %q: allowed %t, want %t", role, admin, perm, tenant, got, want)
					}
					cases++
					if got {
						allowed++
					}
				}
			}
		}
	}
	t.Logf("%d cases, %d allowed", cases, allowed)
}

func TestConsoleRBAC_Rules(t *testing.T) {
	r := NewConsoleRBAC()
	in := func(tenantID string, role tenants.Role) []tenants.Membership {
		return []tenants.Membership{{UserID: "u1", TenantID: tenantID, Role: role}}
	}
	if r.Allowed(false, in("a", tenants.RoleViewer), "a", PermBroadcast) {
		t.Error("a viewer may broadcast")
	}
	if !r.Allowed(false, in("a", tenants.RoleViewer), "a", PermView) {
		t.Error("a viewer may not view")
	}
	for _, perm := range allPermissions {
		if r.Allowed(false, in("a", tenants.RoleOperator), "b", perm) {
			t.Errorf("an operator of tenant a may %s in tenant b", perm)
		}
		if r.Allowed(false, nil, "a", perm) {
			t.Errorf("a user without memberships may %s", perm)
		}
	}
	for _, role := range []tenants.Role{tenants.RoleViewer, tenants.RoleOperator, tenants.RoleOwner} {
		if r.Allowed(false, in("a", role), "a", PermManageTenants) {
			t.Errorf("an %s may manage tenants", role)
		}
	}
	if !r.Allowed(true, nil, "", PermManageTenants) || !r.Allowed(true, nil, "any", PermManageMembers) {
		t.Error("a platform admin may not manage tenants, or members of a tenant it is not in")
	}

	// Each tenant's own role decides, whatever the order of memberships.
	both := []tenants.Membership{{UserID: "u1", TenantID: "a", Role: tenants.RoleOwner}, {UserID: "u1", TenantID: "b", Role: tenants.RoleViewer}}
	for _, ms := range [][]tenants.Membership{both, {both[1], both[0]}} {
		if !r.Allowed(false, ms, "a", PermManageKeys) || r.Allowed(false, ms, "b", PermManageKeys) || !r.Allowed(false, ms, "b", PermView) {
			t.Errorf("owner of a and viewer of b (%v): wrong answers", ms)
		}
	}
	// A membership with no tenant grants nothing, not even where no
	// tenant is named.
	if r.Allowed(false, in("", tenants.RoleOwner), "", PermView) {
		t.Error("a membership without a tenant granted view")
	}
}

func TestRolePermissions(t *testing.T) {
	got := RolePermissions()
	if !maps.EqualFunc(got, wantRolePermissions, slices.Equal) {
		t.Errorf("RolePermissions() = %v, want %v", got, wantRolePermissions)
	}
	if !slices.Equal(consolePermissions, allPermissions) {
		t.Errorf("consolePermissions = %v, want %v", consolePermissions, allPermissions)
	}
	// Callers get their own copy.
	got[tenants.RoleViewer] = append(got[tenants.RoleViewer], PermManageTenants)
	delete(got, tenants.RoleOwner)
	if again := RolePermissions(); !maps.EqualFunc(again, wantRolePermissions, slices.Equal) {
		t.Errorf("changing the result changed the next one: %v", again)
	}
}

// One ConsoleRBAC answers many requests at once (run with -race).
func TestConsoleRBAC_Concurrent(t *testing.T) {
	r := NewConsoleRBAC()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				role := []tenants.Role{tenants.RoleViewer, tenants.RoleOperator, tenants.RoleOwner}[(g+i)%3]
				perm := allPermissions[i%len(allPermissions)]
				tenant := fmt.Sprintf("t%d", i%2)
				ms := []tenants.Membership{{UserID: "u", TenantID: "t0", Role: role}}
				want := tenant == "t0" && slices.Contains(wantRolePermissions[role], perm)
				if got := r.Allowed(false, ms, tenant, perm); got != want {
					t.Errorf("%s %s in %s: %t, want %t", role, perm, tenant, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
