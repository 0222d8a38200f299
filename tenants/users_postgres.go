package tenants

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresUsers is the Users of a cluster, over the console_* tables of
// package migrations, so every node sees the same accounts and sessions.
// Session ids are stored only as their SHA-256.
//
// Queries honour ctx; statement_timeout is the pool's to set. Every
// statement is parameterised.
type PostgresUsers struct {
	pool *pgxpool.Pool
}

var _ Users = (*PostgresUsers)(nil)

// NewPostgresUsers returns a store over pool, whose schema must be migrated.
func NewPostgresUsers(pool *pgxpool.Pool) *PostgresUsers {
	return &PostgresUsers{pool: pool}
}

// PostgreSQL error code for a row that names a missing row of another table.
const foreignKeyViolation = "23503"

// constraintOf returns the name of the constraint a PostgreSQL error is
// about, or "".
func constraintOf(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.ConstraintName
	}
	return ""
}

func (p *PostgresUsers) CreateUser(ctx context.Context, u *User) error {
	if err := prepareUser(u); err != nil {
		return err
	}
	_, err := p.pool.Exec(ctx, `INSERT INTO console_users (id, email, password_hash, platform_admin, disabled, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, u.ID, u.Email, u.PasswordHash, u.PlatformAdmin, u.Disabled, u.CreatedAt)
	switch {
	case hasCode(err, uniqueViolation) && constraintOf(err) == "console_users_email_key":
		return fmt.Errorf("%w: email %q is taken", ErrConflict, u.Email)
	case hasCode(err, uniqueViolation):
		return fmt.Errorf("%w: user id %s is taken", ErrConflict, u.ID)
	}
	return dbError("create user", err)
}

const selectUsers = `SELECT id, email, password_hash, platform_admin, disabled, created_at FROM console_users `

// oneUser runs a selectUsers query that matches at most one user.
func (p *PostgresUsers) oneUser(ctx context.Context, op, sql string, arg string) (*User, error) {
	rows, err := p.pool.Query(ctx, sql, arg)
	if err != nil {
		return nil, dbError(op, err)
	}
	u, err := pgx.CollectExactlyOneRow(rows, pgx.RowToAddrOfStructByPos[User])
	return u, dbError(op, err)
}

func (p *PostgresUsers) UserByEmail(ctx context.Context, email string) (*User, error) {
	email = normalizeEmail(email)
	if !validEmail(email) {
		return nil, ErrNotFound // no stored email has this shape: spare the query
	}
	return p.oneUser(ctx, "user by email", selectUsers+`WHERE email = $1`, email)
}

func (p *PostgresUsers) UserByID(ctx context.Context, id string) (*User, error) {
	if !validUserID(id) {
		return nil, ErrNotFound
	}
	return p.oneUser(ctx, "user by id", selectUsers+`WHERE id = $1`, id)
}

func (p *PostgresUsers) ListUsers(ctx context.Context) ([]*User, error) {
	rows, err := p.pool.Query(ctx, selectUsers+`ORDER BY email`)
	if err != nil {
		return nil, dbError("list users", err)
	}
	users, err := pgx.CollectRows(rows, pgx.RowToAddrOfStructByPos[User])
	return users, dbError("list users", err)
}

func (p *PostgresUsers) SetPassword(ctx context.Context, userID, hash string) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	if !validUserID(userID) {
		return ErrNotFound
	}
	// One transaction, so no session outlives the password it was
	// signed in with.
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE console_users SET password_hash = $2 WHERE id = $1`, userID, hash)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		_, err = tx.Exec(ctx, `DELETE FROM console_sessions WHERE user_id = $1`, userID)
		return err
	})
	return dbError("set password", err)
}

func (p *PostgresUsers) SetPlatformAdmin(ctx context.Context, userID string, admin bool) error {
	if !validUserID(userID) {
		return ErrNotFound
	}
	tag, err := p.pool.Exec(ctx, `UPDATE console_users SET platform_admin = $2 WHERE id = $1`, userID, admin)
	if err != nil {
		return dbError("set platform admin", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

const selectMemberships = `SELECT user_id, tenant_id, role FROM console_memberships `

// memberships runs a selectMemberships query.
func (p *PostgresUsers) memberships(ctx context.Context, op, sql, arg string) ([]Membership, error) {
	rows, err := p.pool.Query(ctx, sql, arg)
	if err != nil {
		return nil, dbError(op, err)
	}
	ms, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Membership])
	return ms, dbError(op, err)
}

func (p *PostgresUsers) Memberships(ctx context.Context, userID string) ([]Membership, error) {
	if !validUserID(userID) {
		return []Membership{}, nil
	}
	return p.memberships(ctx, "memberships", selectMemberships+`WHERE user_id = $1 ORDER BY tenant_id`, userID)
}

func (p *PostgresUsers) Members(ctx context.Context, tenantID string) ([]Membership, error) {
	if !ValidTenantID(tenantID) {
		return []Membership{}, nil
	}
	return p.memberships(ctx, "members", selectMemberships+`WHERE tenant_id = $1 ORDER BY user_id`, tenantID)
}

// lockMembers locks every membership row of the tenant until the end of tx
// and returns the members' roles by user id. Changes that could remove an
// owner take these locks first, so they run one after the other and each
// sees the owners the previous one left: two owners demoting each other at
// once cannot both succeed. Rows are locked in user id order, the same in
// every transaction, so that two of them cannot deadlock.
func lockMembers(ctx context.Context, tx pgx.Tx, tenantID string) (map[string]Role, error) {
	rows, err := tx.Query(ctx, `SELECT user_id, role FROM console_memberships
		WHERE tenant_id = $1 ORDER BY user_id FOR UPDATE`, tenantID)
	if err != nil {
		return nil, err
	}
	roles := map[string]Role{}
	var (
		userID string
		role   Role
	)
	_, err = pgx.ForEachRow(rows, []any{&userID, &role}, func() error {
		roles[userID] = role
		return nil
	})
	return roles, err
}

func (p *PostgresUsers) SetMembership(ctx context.Context, m Membership) error {
	if !m.Role.Valid() {
		return fmt.Errorf("%w: role %q must be %s, %s or %s", ErrInvalid, m.Role, RoleOwner, RoleOperator, RoleViewer)
	}
	if !validUserID(m.UserID) {
		return fmt.Errorf("%w: user %q", ErrNotFound, m.UserID)
	}
	if !ValidTenantID(m.TenantID) {
		return fmt.Errorf("%w: tenant %q", ErrNotFound, m.TenantID)
	}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var userExists, tenantExists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM console_users WHERE id = $1),
			EXISTS (SELECT 1 FROM tenants WHERE id = $2)`, m.UserID, m.TenantID).Scan(&userExists, &tenantExists); err != nil {
			return err
		}
		if !userExists {
			return fmt.Errorf("%w: user %q", ErrNotFound, m.UserID)
		}
		if !tenantExists {
			return fmt.Errorf("%w: tenant %q", ErrNotFound, m.TenantID)
		}
		roles, err := lockMembers(ctx, tx, m.TenantID)
		if err != nil {
			return err
		}
		if m.Role != RoleOwner && isLastOwner(roles, m.UserID) {
			return lastOwnerError(m.UserID, m.TenantID)
		}
		_, err = tx.Exec(ctx, `INSERT INTO console_memberships (user_id, tenant_id, role) VALUES ($1, $2, $3)
			ON CONFLICT (user_id, tenant_id) DO UPDATE SET role = excluded.role`, m.UserID, m.TenantID, m.Role)
		if hasCode(err, foreignKeyViolation) {
			// Only a user or tenant deleted since the check above.
			return fmt.Errorf("%w: user %q or tenant %q", ErrNotFound, m.UserID, m.TenantID)
		}
		return err
	})
	return dbError("set membership", err)
}

func (p *PostgresUsers) RemoveMembership(ctx context.Context, userID, tenantID string) error {
	notMember := fmt.Errorf("%w: user %q is not a member of tenant %q", ErrNotFound, userID, tenantID)
	if !validUserID(userID) || !ValidTenantID(tenantID) {
		return notMember
	}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		roles, err := lockMembers(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		if _, ok := roles[userID]; !ok {
			return notMember
		}
		if isLastOwner(roles, userID) {
			return lastOwnerError(userID, tenantID)
		}
		_, err = tx.Exec(ctx, `DELETE FROM console_memberships WHERE user_id = $1 AND tenant_id = $2`, userID, tenantID)
		return err
	})
	return dbError("remove membership", err)
}

func (p *PostgresUsers) CreateSession(ctx context.Context, s Session) error {
	if err := prepareSession(&s); err != nil {
		return err
	}
	if !validUserID(s.UserID) {
		return fmt.Errorf("%w: user %q", ErrNotFound, s.UserID)
	}
	// Nothing else removes sessions that expire unused; sign-ins are rare
	// enough to pay for the sweep, which the expires_at index keeps cheap.
	if _, err := p.pool.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= $1`, time.Now()); err != nil {
		return dbError("create session", err)
	}
	key := sessionKey(s.ID)
	_, err := p.pool.Exec(ctx, `INSERT INTO console_sessions (id_sha256, user_id, csrf, created_at, last_seen_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, key[:], s.UserID, s.CSRF, s.CreatedAt, s.LastSeen, s.ExpiresAt)
	switch {
	case hasCode(err, foreignKeyViolation):
		return fmt.Errorf("%w: user %q", ErrNotFound, s.UserID)
	case hasCode(err, uniqueViolation):
		return fmt.Errorf("%w: session id is taken", ErrConflict)
	}
	return dbError("create session", err)
}

func (p *PostgresUsers) Session(ctx context.Context, id string) (*Session, error) {
	key := sessionKey(id)
	s := Session{ID: id}
	// Expiry is judged by this node's clock, as in the memory store, not
	// by the database's.
	err := p.pool.QueryRow(ctx, `SELECT user_id, csrf, created_at, last_seen_at, expires_at FROM console_sessions
		WHERE id_sha256 = $1 AND expires_at > $2`, key[:], time.Now()).
		Scan(&s.UserID, &s.CSRF, &s.CreatedAt, &s.LastSeen, &s.ExpiresAt)
	if err != nil {
		return nil, dbError("session", err)
	}
	return &s, nil
}

func (p *PostgresUsers) TouchSession(ctx context.Context, id string, lastSeen time.Time) error {
	key := sessionKey(id)
	// GREATEST, because requests of one session may finish out of order.
	tag, err := p.pool.Exec(ctx, `UPDATE console_sessions SET last_seen_at = GREATEST(last_seen_at, $2)
		WHERE id_sha256 = $1 AND expires_at > $3`, key[:], lastSeen, time.Now())
	if err != nil {
		return dbError("touch session", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

func (p *PostgresUsers) DeleteSession(ctx context.Context, id string) error {
	key := sessionKey(id)
	_, err := p.pool.Exec(ctx, `DELETE FROM console_sessions WHERE id_sha256 = $1`, key[:])
	return dbError("delete session", err)
}

func (p *PostgresUsers) DeleteUserSessions(ctx context.Context, userID string) error {
	if !validUserID(userID) {
		return nil // such a user has no sessions
	}
	_, err := p.pool.Exec(ctx, `DELETE FROM console_sessions WHERE user_id = $1`, userID)
	return dbError("delete user sessions", err)
}

func (p *PostgresUsers) CreateInvite(ctx context.Context, inv Invite) error {
	if err := prepareInvite(&inv); err != nil {
		return err
	}
	if !ValidTenantID(inv.TenantID) {
		return fmt.Errorf("%w: tenant %q", ErrNotFound, inv.TenantID)
	}
	key := inviteKey(inv.Token)
	_, err := p.pool.Exec(ctx, `INSERT INTO console_invites (token_sha256, tenant_id, email, role, created_by, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, key[:], inv.TenantID, inv.Email, inv.Role, inv.CreatedBy, inv.CreatedAt, inv.ExpiresAt)
	switch {
	case hasCode(err, foreignKeyViolation):
		return fmt.Errorf("%w: tenant %q", ErrNotFound, inv.TenantID)
	case hasCode(err, uniqueViolation):
		return fmt.Errorf("%w: invite token is taken", ErrConflict)
	}
	return dbError("create invite", err)
}

const inviteColumns = `tenant_id, email, role, created_by, created_at, expires_at`

// scanInvite reads the inviteColumns of one row into an invite with token.
func scanInvite(row pgx.Row, token string) (*Invite, error) {
	inv := Invite{Token: token}
	if err := row.Scan(&inv.TenantID, &inv.Email, &inv.Role, &inv.CreatedBy, &inv.CreatedAt, &inv.ExpiresAt); err != nil {
		return nil, err
	}
	return &inv, nil
}

func (p *PostgresUsers) Invite(ctx context.Context, token string, now time.Time) (*Invite, error) {
	key := inviteKey(token)
	inv, err := scanInvite(p.pool.QueryRow(ctx, `SELECT `+inviteColumns+` FROM console_invites
		WHERE token_sha256 = $1 AND used_at IS NULL AND expires_at > $2`, key[:], now), token)
	return inv, dbError("invite", err)
}

func (p *PostgresUsers) ConsumeInvite(ctx context.Context, token string, now time.Time) (*Invite, error) {
	key := inviteKey(token)
	// One statement: the row lock makes a concurrent consume wait, then
	// re-check used_at and find the invite used.
	inv, err := scanInvite(p.pool.QueryRow(ctx, `UPDATE console_invites SET used_at = $2
		WHERE token_sha256 = $1 AND used_at IS NULL AND expires_at > $2
		RETURNING `+inviteColumns, key[:], now), token)
	return inv, dbError("consume invite", err)
}

func (p *PostgresUsers) Invites(ctx context.Context, tenantID string) ([]Invite, error) {
	if !ValidTenantID(tenantID) {
		return []Invite{}, nil
	}
	rows, err := p.pool.Query(ctx, `SELECT `+inviteColumns+` FROM console_invites
		WHERE tenant_id = $1 AND used_at IS NULL AND expires_at > $2 ORDER BY created_at, email`, tenantID, time.Now())
	if err != nil {
		return nil, dbError("invites", err)
	}
	out := []Invite{}
	for rows.Next() {
		inv, err := scanInvite(rows, "")
		if err != nil {
			rows.Close()
			return nil, dbError("invites", err)
		}
		out = append(out, *inv)
	}
	return out, dbError("invites", rows.Err())
}
