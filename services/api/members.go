package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/services/audit"
	"github.com/heraldrt/herald/tenants"
)

// InviteTTL is how long an invite link works.
const InviteTTL = 7 * 24 * time.Hour

// MinPasswordLength is the shortest password a new console account may
// have, in bytes.
const MinPasswordLength = 10

func newInviteToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// InviteMember invites email to the tenant with role and returns the
// invite's token, the secret of the link, which is not stored and so
// cannot be shown again. It works for 7 days, once.
func (m *Manager) InviteMember(ctx context.Context, a Actor, tenantID, email string, role tenants.Role) (string, error) {
	if !role.Valid() {
		return "", invalid("role must be owner, operator or viewer")
	}
	if _, err := m.Apps.Tenant(ctx, tenantID); err != nil {
		return "", err
	}
	now := time.Now().Truncate(time.Microsecond)
	inv := tenants.Invite{Token: newInviteToken(), TenantID: tenantID, Email: email, Role: role, CreatedBy: a.Name,
		CreatedAt: now, ExpiresAt: now.Add(InviteTTL)}
	if err := m.Users.CreateInvite(ctx, inv); err != nil {
		return "", err
	}
	stored, err := m.Users.Invite(ctx, inv.Token, now)
	if err != nil {
		return "", err
	}
	return inv.Token, m.record(ctx, a, audit.Entry{TenantID: tenantID, Action: "member.invite", Target: stored.Email,
		Details: map[string]string{"role": string(role), "expires_at": stored.ExpiresAt.UTC().Format(time.RFC3339)}})
}

// isMember reports whether the user is a member of the tenant.
func (m *Manager) isMember(ctx context.Context, tenantID, userID string) error {
	ms, err := m.Users.Members(ctx, tenantID)
	if err != nil {
		return err
	}
	for _, ms := range ms {
		if ms.UserID == userID {
			return nil
		}
	}
	return fmt.Errorf("%w: user %s is not a member of tenant %s", tenants.ErrNotFound, userID, tenantID)
}

// SetMemberRole changes a member's role in the tenant. Demoting the last
// owner is ErrConflict.
func (m *Manager) SetMemberRole(ctx context.Context, a Actor, tenantID, userID string, role tenants.Role) error {
	if !role.Valid() {
		return invalid("role must be owner, operator or viewer")
	}
	if err := m.isMember(ctx, tenantID, userID); err != nil {
		return err
	}
	if err := m.Users.SetMembership(ctx, tenants.Membership{UserID: userID, TenantID: tenantID, Role: role}); err != nil {
		return err
	}
	return m.record(ctx, a, audit.Entry{TenantID: tenantID, Action: "member.role", Target: userID, Details: map[string]string{"role": string(role)}})
}

// RemoveMember removes a member from the tenant. Removing the last owner
// is ErrConflict.
func (m *Manager) RemoveMember(ctx context.Context, a Actor, tenantID, userID string) error {
	if err := m.Users.RemoveMembership(ctx, userID, tenantID); err != nil {
		return err
	}
	return m.record(ctx, a, audit.Entry{TenantID: tenantID, Action: "member.remove", Target: userID})
}

// ErrWrongPassword is AcceptInvite's answer when the invite's email has an
// account and the password is not that account's.
var ErrWrongPassword = fmt.Errorf("%w: wrong password for the existing account", tenants.ErrInvalid)

// AcceptInvite uses the invite of token at now. If its email has no
// account, one is created with password (at least 10 characters);
// otherwise password must be that account's, so that an invite link does
// not sign anyone in to an existing account. The user then gets the
// invite's role in its tenant. An unknown, used or expired invite is
// ErrNotFound.
func (m *Manager) AcceptInvite(ctx context.Context, token, password string, now time.Time) (*tenants.User, error) {
	inv, err := m.Users.Invite(ctx, token, now)
	if err != nil {
		return nil, err
	}
	user, err := m.Users.UserByEmail(ctx, inv.Email)
	var hash string
	switch {
	case errors.Is(err, tenants.ErrNotFound):
		user = nil
		if len(password) < MinPasswordLength {
			return nil, invalid("the password must be at least %d characters", MinPasswordLength)
		}
		if hash, err = authz.HashPassword(password); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case user.Disabled:
		return nil, invalid("the account of %s is disabled", user.Email)
	case !authz.CheckPassword(user.PasswordHash, password):
		return nil, ErrWrongPassword
	}
	// Only now is the invite used: a refused password leaves it working.
	if inv, err = m.Users.ConsumeInvite(ctx, token, now); err != nil {
		return nil, err
	}
	if user == nil {
		user = tenants.NewUser(inv.Email, hash)
		if err := m.Users.CreateUser(ctx, user); err != nil {
			return nil, err
		}
	}
	if err := m.Users.SetMembership(ctx, tenants.Membership{UserID: user.ID, TenantID: inv.TenantID, Role: inv.Role}); err != nil {
		return nil, err
	}
	return user, m.record(ctx, Actor{Name: "user:" + user.Email}, audit.Entry{TenantID: inv.TenantID, Action: "member.join", Target: user.ID,
		Details: map[string]string{"role": string(inv.Role), "invited_by": inv.CreatedBy}})
}

// SignUp creates an account for email with password, a tenant named
// tenantName on the default plan with the user as its owner, and the
// tenant's first app, whose key it returns: the only time its secret is
// shown. Every step is audited, with the new user as the actor. An email
// that has an account is ErrConflict. ErrNotAudited comes with the
// created values.
func (m *Manager) SignUp(ctx context.Context, email, password, tenantName string) (*tenants.User, *tenants.Tenant, *tenants.App, tenants.Key, error) {
	fail := func(err error) (*tenants.User, *tenants.Tenant, *tenants.App, tenants.Key, error) {
		return nil, nil, nil, tenants.Key{}, err
	}
	user := tenants.NewUser(email, "unset")
	switch _, err := m.Users.UserByEmail(ctx, user.Email); {
	case err == nil:
		return fail(fmt.Errorf("%w: there is already an account for %s: sign in instead", tenants.ErrConflict, user.Email))
	case !errors.Is(err, tenants.ErrNotFound):
		return fail(err)
	}
	if len(password) < MinPasswordLength {
		return fail(invalid("the password must be at least %d characters", MinPasswordLength))
	}
	if tenantName == "" || len(tenantName) > 200 {
		return fail(invalid("a tenant name is required (at most 200 characters)"))
	}
	hash, err := authz.HashPassword(password)
	if err != nil {
		return fail(err)
	}
	user.PasswordHash = hash
	// The account first: it validates the email, and a sign-up racing
	// for the same one fails before anything else is made.
	if err := m.Users.CreateUser(ctx, user); err != nil {
		return fail(err)
	}
	a := Actor{Name: "user:" + user.Email}
	var notAudited error
	keep := func(err error) error {
		if errors.Is(err, ErrNotAudited) {
			notAudited = err
			return nil
		}
		return err
	}
	if err := keep(m.record(ctx, a, audit.Entry{Chain: audit.PlatformChain, Action: "user.signup", Target: user.ID})); err != nil {
		return fail(err)
	}
	t, err := m.CreateTenant(ctx, a, "", tenantName, "")
	if err = keep(err); err != nil {
		return fail(err)
	}
	if err := m.Users.SetMembership(ctx, tenants.Membership{UserID: user.ID, TenantID: t.ID, Role: tenants.RoleOwner}); err != nil {
		return fail(err)
	}
	if err := keep(m.record(ctx, a, audit.Entry{TenantID: t.ID, Action: "member.join", Target: user.ID,
		Details: map[string]string{"role": string(tenants.RoleOwner), "via": "signup"}})); err != nil {
		return fail(err)
	}
	name := "Default app"
	app, key, err := m.CreateApp(ctx, a, AppChange{TenantID: t.ID, Name: &name})
	if err = keep(err); err != nil {
		return fail(err)
	}
	return user, t, app, key, notAudited
}
