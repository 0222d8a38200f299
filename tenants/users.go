package tenants

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Role is a console user's role in one tenant.
type Role string

// Console roles, from least to most privileged; package authz says what
// each may do.
const (
	RoleOwner    Role = "owner"
	RoleOperator Role = "operator"
	RoleViewer   Role = "viewer"
)

// Valid reports whether r is one of the console roles.
func (r Role) Valid() bool {
	return r == RoleOwner || r == RoleOperator || r == RoleViewer
}

// User is a console account.
type User struct {
	// ID is "u" and 12 hex digits, made by NewUser.
	ID string `json:"id"`
	// Email is stored lower-cased and trimmed: 3 to 254 bytes with one @.
	Email string `json:"email"`
	// PasswordHash is an authz.HashPassword string. It is never encoded
	// or printed (see Format), so a user can be shown or logged whole
	// without handing out what an offline guesser needs.
	PasswordHash  string    `json:"-"`
	PlatformAdmin bool      `json:"platform_admin"`
	Disabled      bool      `json:"disabled"`
	CreatedAt     time.Time `json:"created_at"`
}

// NewUser returns a user with a fresh id, the normalised email and the given
// password hash. Stores validate it when it is created.
func NewUser(email, passwordHash string) *User {
	return &User{ID: "u" + randomHex(6), Email: normalizeEmail(email), PasswordHash: passwordHash}
}

// userFields is User without its methods, for Format to print.
type userFields User

// Format prints the user as fmt would, with the password hash shown as
// "[redacted]"; slog's handlers and templates print through it too.
func (u User) Format(f fmt.State, verb rune) {
	v := userFields(u)
	if v.PasswordHash != "" {
		v.PasswordHash = redacted
	}
	_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), v)
}

// Membership gives a user a role in a tenant.
type Membership struct {
	UserID   string `json:"user_id"`
	TenantID string `json:"tenant_id"`
	Role     Role   `json:"role"`
}

// Session is a signed-in console session. ID is the secret the browser
// holds in its cookie; stores keep only its SHA-256, so a copy of the store
// cannot be replayed as cookies.
type Session struct {
	ID     string
	UserID string
	// CSRF is the per-session token (32 random bytes, hex) that the
	// console's forms echo back.
	CSRF      string
	CreatedAt time.Time
	LastSeen  time.Time
	// ExpiresAt is the absolute expiry: the session is valid before it,
	// however recently it was used.
	ExpiresAt time.Time
}

// Users holds console users, their memberships and sessions. Every method
// is safe for concurrent use, and returned values are copies the caller
// may keep.
type Users interface {
	// CreateUser normalises u.Email and fills a zero u.CreatedAt, in
	// place, then stores the user. It returns ErrInvalid (wrapped, naming
	// the field) for a bad id or email or an empty hash, and ErrConflict
	// if the email or id is taken.
	CreateUser(ctx context.Context, u *User) error
	// UserByEmail returns the user with email, compared case-insensitively
	// and without surrounding blanks, or ErrNotFound.
	UserByEmail(ctx context.Context, email string) (*User, error)
	// UserByID returns the user with id, or ErrNotFound.
	UserByID(ctx context.Context, id string) (*User, error)
	// ListUsers returns every user, ordered by email.
	ListUsers(ctx context.Context) ([]*User, error)
	// SetPassword replaces the user's password hash and deletes all of the
	// user's sessions, so that a password change signs the user out
	// everywhere. ErrNotFound for an unknown user, ErrInvalid for an empty
	// hash.
	SetPassword(ctx context.Context, userID, hash string) error
	// SetPlatformAdmin grants or withdraws platform administration;
	// ErrNotFound for an unknown user.
	SetPlatformAdmin(ctx context.Context, userID string, admin bool) error

	// Memberships returns the user's memberships, ordered by tenant id.
	Memberships(ctx context.Context, userID string) ([]Membership, error)
	// Members returns the tenant's memberships, ordered by user id.
	Members(ctx context.Context, tenantID string) ([]Membership, error)
	// SetMembership gives the user the role in the tenant, adding the
	// membership or changing its role. It returns ErrInvalid for a bad
	// role, ErrNotFound for an unknown user or tenant, and ErrConflict
	// when it would demote the tenant's last owner, so that every tenant
	// that has an owner keeps one.
	SetMembership(ctx context.Context, m Membership) error
	// RemoveMembership removes the user from the tenant: ErrNotFound if
	// the user is not a member, ErrConflict if the user is the tenant's
	// last owner.
	RemoveMembership(ctx context.Context, userID, tenantID string) error

	// CreateSession stores a new session. ID, UserID, CSRF and ExpiresAt
	// are required (ErrInvalid); a zero CreatedAt or LastSeen means now.
	// It returns ErrNotFound for an unknown user and ErrConflict if the id
	// is taken. Expired sessions are purged on the way.
	CreateSession(ctx context.Context, s Session) error
	// Session returns the session whose raw id is id, with that id, or
	// ErrNotFound when it is unknown or expired.
	Session(ctx context.Context, id string) (*Session, error)
	// TouchSession records use of the session at lastSeen; LastSeen never
	// moves backwards. ErrNotFound when it is unknown or expired.
	TouchSession(ctx context.Context, id string, lastSeen time.Time) error
	// DeleteSession deletes a session (signing out); an unknown id is not
	// an error.
	DeleteSession(ctx context.Context, id string) error
	// DeleteUserSessions deletes every session of the user.
	DeleteUserSessions(ctx context.Context, userID string) error

	Invites
}

// Limits of an email address, in bytes (RFC 5321 allows 254 in a path).
const (
	minEmailBytes = 3
	maxEmailBytes = 254
)

// normalizeEmail is the form emails are stored and looked up in: users type
// their address in any case, and mail providers ignore it. A string that is
// not UTF-8 becomes "", which is invalid, rather than what ToLower would
// make of it.
func normalizeEmail(email string) string {
	if !utf8.ValidString(email) {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(email))
}

// validEmail reports whether a normalised email can be stored. It checks
// only the shape, as the address is not used to send mail here; blanks and
// control characters are refused because emails are shown in the console and
// written to the audit log.
func validEmail(email string) bool {
	if len(email) < minEmailBytes || len(email) > maxEmailBytes {
		return false
	}
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return false
	}
	return !strings.ContainsFunc(email, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
}

// validUserID reports whether id has the shape NewUser gives ids.
func validUserID(id string) bool {
	if len(id) != 13 || id[0] != 'u' {
		return false
	}
	for i := 1; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// prepareUser normalises and checks a user about to be created, filling a
// zero CreatedAt and truncating it to what PostgreSQL keeps.
func prepareUser(u *User) error {
	u.Email = normalizeEmail(u.Email)
	if !validUserID(u.ID) {
		return fmt.Errorf("%w: user id %q must be u and 12 characters of [0-9a-f]", ErrInvalid, u.ID)
	}
	if !validEmail(u.Email) {
		return fmt.Errorf("%w: email %q must be %d to %d bytes with one @ and no blanks", ErrInvalid, u.Email, minEmailBytes, maxEmailBytes)
	}
	if u.PasswordHash == "" {
		return fmt.Errorf("%w: user %s: password hash is required", ErrInvalid, u.ID)
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = nowMicro()
	}
	u.CreatedAt = u.CreatedAt.Truncate(time.Microsecond)
	return nil
}

// isLastOwner reports whether the user is the only owner among a tenant's
// members' roles (by user id).
func isLastOwner(roles map[string]Role, userID string) bool {
	if roles[userID] != RoleOwner {
		return false
	}
	for id, role := range roles {
		if id != userID && role == RoleOwner {
			return false
		}
	}
	return true
}

// lastOwnerError is the refusal to demote or remove a tenant's last owner,
// which would leave nobody able to manage its members.
func lastOwnerError(userID, tenantID string) error {
	return fmt.Errorf("%w: user %s is the last owner of tenant %s; make another member owner first", ErrConflict, userID, tenantID)
}

// checkHash checks a password hash given to SetPassword.
func checkHash(hash string) error {
	if hash == "" {
		return fmt.Errorf("%w: password hash is required", ErrInvalid)
	}
	return nil
}

// prepareSession checks a session about to be created, fills its zero
// times and truncates all of them to what PostgreSQL keeps.
func prepareSession(s *Session) error {
	switch {
	case s.ID == "":
		return fmt.Errorf("%w: session id is required", ErrInvalid)
	case s.UserID == "":
		return fmt.Errorf("%w: session user id is required", ErrInvalid)
	case s.CSRF == "":
		return fmt.Errorf("%w: session CSRF token is required", ErrInvalid)
	case s.ExpiresAt.IsZero():
		return fmt.Errorf("%w: session expiry is required", ErrInvalid)
	}
	n := nowMicro()
	if s.CreatedAt.IsZero() {
		s.CreatedAt = n
	}
	if s.LastSeen.IsZero() {
		s.LastSeen = n
	}
	s.CreatedAt = s.CreatedAt.Truncate(time.Microsecond)
	s.LastSeen = s.LastSeen.Truncate(time.Microsecond)
	s.ExpiresAt = s.ExpiresAt.Truncate(time.Microsecond)
	return nil
}

// sessionKey is what stores keep in place of a session id.
func sessionKey(id string) [sha256.Size]byte { return sha256.Sum256([]byte(id)) }

// nowMicro is the current time at the precision PostgreSQL stores, so that a
// time a store fills in reads back the same from every store.
func nowMicro() time.Time { return time.Now().Truncate(time.Microsecond) }
