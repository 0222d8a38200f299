package tenants

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"
)

// Invite asks someone, by email, to join a tenant with a role. Token is the
// secret of the invite link: stores keep only its SHA-256, so it is set
// only on the value given to CreateInvite and returned by ConsumeInvite.
type Invite struct {
	Token     string
	TenantID  string
	Email     string
	Role      Role
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Invites is the part of Users that keeps invitations. It is listed apart
// for documentation; Users embeds it.
type Invites interface {
	// CreateInvite stores an invite. Token, a valid email and role, and
	// ExpiresAt are required (ErrInvalid); the tenant must exist
	// (ErrNotFound); a zero CreatedAt means now. ErrConflict if the token
	// is taken.
	CreateInvite(ctx context.Context, inv Invite) error
	// Invite returns the pending invite of token without using it, or
	// ErrNotFound when it is unknown, used or expired at now.
	Invite(ctx context.Context, token string, now time.Time) (*Invite, error)
	// ConsumeInvite marks the invite of token used and returns it, or
	// ErrNotFound when it is unknown, used or expired at now. Of two
	// concurrent calls with one token, exactly one succeeds.
	ConsumeInvite(ctx context.Context, token string, now time.Time) (*Invite, error)
	// Invites returns the tenant's pending invites (neither used nor
	// expired), oldest first, without their tokens.
	Invites(ctx context.Context, tenantID string) ([]Invite, error)
}

// prepareInvite checks an invite about to be created and normalises it.
func prepareInvite(inv *Invite) error {
	inv.Email = normalizeEmail(inv.Email)
	switch {
	case inv.Token == "":
		return fmt.Errorf("%w: invite token is required", ErrInvalid)
	case !validEmail(inv.Email):
		return fmt.Errorf("%w: email %q must be %d to %d bytes with one @ and no blanks", ErrInvalid, inv.Email, minEmailBytes, maxEmailBytes)
	case !inv.Role.Valid():
		return fmt.Errorf("%w: role %q must be %s, %s or %s", ErrInvalid, inv.Role, RoleOwner, RoleOperator, RoleViewer)
	case inv.ExpiresAt.IsZero():
		return fmt.Errorf("%w: invite expiry is required", ErrInvalid)
	}
	if inv.CreatedAt.IsZero() {
		inv.CreatedAt = nowMicro()
	}
	inv.CreatedAt = inv.CreatedAt.Truncate(time.Microsecond)
	inv.ExpiresAt = inv.ExpiresAt.Truncate(time.Microsecond)
	return nil
}

// inviteKey is what stores keep in place of an invite token.
func inviteKey(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }
