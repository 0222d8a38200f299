package authz

import (
	"fmt"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"

	"github.com/heraldrt/herald/tenants"
)

// Permission is something a console user may do in a tenant.
type Permission string

// Console permissions.
const (
	// PermView covers the tenant's apps, keys (never secrets), policies,
	// live view, usage and audit log.
	PermView Permission = "view"
	// PermBroadcast covers operator broadcasts.
	PermBroadcast Permission = "broadcast"
	// PermDebug covers the debug stream.
	PermDebug Permission = "debug"
	// PermManageApps covers creating apps and changing their settings.
	PermManageApps Permission = "apps.manage"
	// PermManageKeys covers creating, rotating and revoking keys.
	PermManageKeys Permission = "keys.manage"
	// PermManagePolicies covers changing channel policies.
	PermManagePolicies Permission = "policies.manage"
	// PermManageMembers covers inviting members and changing their roles.
	PermManageMembers Permission = "members.manage"
	// PermManageTenants covers creating and suspending tenants; only
	// platform admins have it.
	PermManageTenants Permission = "tenants.manage"
)

// consolePermissions lists every permission, in the order RolePermissions
// gives them.
var consolePermissions = []Permission{PermView, PermBroadcast, PermDebug, PermManageApps,
	PermManageKeys, PermManagePolicies, PermManageMembers, PermManageTenants}

// platformAdminSubject is the Casbin subject of platform admins. It is not
// a tenants.Role, so no membership can name it: Allowed only uses it for a
// user whose PlatformAdmin flag is set.
const platformAdminSubject = "platform-admin"

// consoleGrants is the one role→permission table: each subject's own
// permissions, and the subject whose permissions it has as well.
var consoleGrants = []struct {
	subject  string
	inherits string
	perms    []Permission
}{
	{string(tenants.RoleViewer), "", []Permission{PermView}},
	{string(tenants.RoleOperator), string(tenants.RoleViewer), []Permission{PermBroadcast, PermDebug}},
	{string(tenants.RoleOwner), string(tenants.RoleOperator),
		[]Permission{PermManageApps, PermManageKeys, PermManagePolicies, PermManageMembers}},
	{platformAdminSubject, string(tenants.RoleOwner), []Permission{PermManageTenants}},
}

// consoleModel is the Casbin model of console permissions. A request is a
// subject (the user's role in the tenant at hand, or platformAdminSubject)
// and a permission; g rows make each role inherit the one below it, and the
// platform admin inherit the owner. The tenant is the domain of the
// decision: Allowed picks the role the user holds in that tenant before
// asking, so nothing granted in one tenant can match a request in another.
// The string comparison comes first because govaluate short-circuits &&.
const consoleModel = `
[request_definition]
r = sub, act

[policy_definition]
p = sub, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.act == p.act && g(r.sub, p.sub)
`

// ConsoleRBAC decides console permissions from one role→permission table:
// a viewer may view; an operator may also broadcast and debug; an owner may
// also manage apps, keys, policies and members. Platform admins may do
// everything in every tenant, including managing tenants, and a user with
// no membership in a tenant may do nothing there. It is a Casbin RBAC model
// whose domain is the tenant, built once.
//
// It is safe for concurrent use: nothing changes the enforcer after
// NewConsoleRBAC, Casbin's Enforce only reads the model (it caches the
// parsed matcher in a sync.Map, filled by the check NewConsoleRBAC makes),
// and the role manager serialises its own lookups.
type ConsoleRBAC struct {
	enforcer *casbin.Enforcer
}

// NewConsoleRBAC builds the enforcer. The model and table are constants, so
// it fails only through a programming error, which it panics on.
func NewConsoleRBAC() *ConsoleRBAC {
	r, err := newConsoleRBAC()
	if err != nil {
		panic(err)
	}
	return r
}

func newConsoleRBAC() (*ConsoleRBAC, error) {
	m, err := model.NewModelFromString(consoleModel)
	if err != nil {
		return nil, fmt.Errorf("authz: console model: %w", err)
	}
	e, err := casbin.NewEnforcer(m)
	if err != nil {
		return nil, fmt.Errorf("authz: console enforcer: %w", err)
	}
	var prows, grows [][]string
	for _, g := range consoleGrants {
		if g.inherits != "" {
			grows = append(grows, []string{g.subject, g.inherits})
		}
		for _, p := range g.perms {
			prows = append(prows, []string{g.subject, string(p)})
		}
	}
	if _, err := e.AddPolicies(prows); err != nil {
		return nil, fmt.Errorf("authz: console permissions: %w", err)
	}
	if _, err := e.AddGroupingPolicies(grows); err != nil {
		return nil, fmt.Errorf("authz: console role inheritance: %w", err)
	}
	r := &ConsoleRBAC{enforcer: e}
	// A first check compiles and caches the matcher before the enforcer
	// is shared, so a broken model fails here.
	if _, err := e.Enforce(string(tenants.RoleViewer), string(PermView)); err != nil {
		return nil, fmt.Errorf("authz: console enforcer: %w", err)
	}
	return r, nil
}

// Allowed reports whether a user may perform perm in tenantID, given
// whether the user is a platform admin and the user's memberships. An
// unknown permission, or a membership with an unknown role, allows nothing.
func (r *ConsoleRBAC) Allowed(platformAdmin bool, memberships []tenants.Membership, tenantID string, perm Permission) bool {
	if platformAdmin {
		return r.enforce(platformAdminSubject, perm)
	}
	for _, m := range memberships {
		if m.TenantID == tenantID && tenantID != "" {
			// Only the tenant roles: a forged role naming the platform
			// admin subject must not inherit its grants.
			return m.Role.Valid() && r.enforce(string(m.Role), perm)
		}
	}
	return false
}

// enforce asks Casbin whether subject has perm. A failed check is a
// denial.
func (r *ConsoleRBAC) enforce(subject string, perm Permission) bool {
	ok, err := r.enforcer.Enforce(subject, string(perm))
	return err == nil && ok
}

// RolePermissions lists each tenant role's permissions, inherited ones
// included, in a fixed order (for documentation and the generated matrix
// test). It asks a new ConsoleRBAC, so it shows what Allowed decides.
func RolePermissions() map[tenants.Role][]Permission {
	r := NewConsoleRBAC()
	out := map[tenants.Role][]Permission{}
	for _, g := range consoleGrants {
		role := tenants.Role(g.subject)
		if !role.Valid() {
			continue // the platform admin subject is not a role
		}
		out[role] = []Permission{}
		for _, p := range consolePermissions {
			if r.enforce(g.subject, p) {
				out[role] = append(out[role], p)
			}
		}
	}
	return out
}
