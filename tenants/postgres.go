package tenants

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresStore is the Store of a cluster: every node shares the tenants,
// apps and keys in PostgreSQL (the schema of package migrations). Secrets
// are stored encrypted under the keyring's active master key and decrypted
// only into the App values that lookups return. Put a Cache in front of it
// on request paths.
//
// Queries honour ctx; statement_timeout is the pool's to set. Every
// statement is parameterised.
type PostgresStore struct {
	pool *pgxpool.Pool
	keys *Keyring
}

var _ Store = (*PostgresStore)(nil)

// NewPostgresStore returns a store over pool, whose schema must be migrated,
// encrypting secrets with keys (which must not be nil).
func NewPostgresStore(pool *pgxpool.Pool, keys *Keyring) *PostgresStore {
	return &PostgresStore{pool: pool, keys: keys}
}

// selectApps reads apps with their active keys, one row per key, in the
// order scanApps needs: by app id, then in the app's key order. Callers
// append a WHERE clause and orderApps.
const selectApps = `SELECT a.id, a.tenant_id, a.name, a.enabled, a.settings, t.status = 'suspended', t.plan,
	k.key, k.kid, k.secret_ciphertext
FROM apps a
JOIN tenants t ON t.id = a.tenant_id
JOIN app_keys k ON k.app_id = a.id AND k.revoked_at IS NULL
`

const orderApps = ` ORDER BY a.id, k.position`

// scanApps decrypts and groups the rows of a selectApps query into apps.
func (s *PostgresStore) scanApps(rows pgx.Rows) ([]*App, error) {
	defer rows.Close()
	var apps []*App
	for rows.Next() {
		var (
			a   App
			k   Key
			kid string
			ct  []byte
		)
		if err := rows.Scan(&a.ID, &a.TenantID, &a.Name, &a.Enabled, &a.Settings, &a.Suspended, &a.Plan, &k.Key, &kid, &ct); err != nil {
			return nil, err
		}
		secret, err := s.keys.Open(kid, a.ID, k.Key, ct)
		if err != nil {
			return nil, err
		}
		k.Secret = secret
		if n := len(apps); n > 0 && apps[n-1].ID == a.ID {
			apps[n-1].Keys = append(apps[n-1].Keys, k)
			continue
		}
		a.Keys = []Key{k}
		apps = append(apps, &a)
	}
	return apps, rows.Err()
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// oneApp runs a selectApps query that matches at most one app.
func (s *PostgresStore) oneApp(ctx context.Context, q querier, sql string, args ...any) (*App, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	apps, err := s.scanApps(rows)
	if err != nil {
		return nil, err
	}
	if len(apps) == 0 {
		return nil, ErrNotFound
	}
	return apps[0], nil
}

func (s *PostgresStore) AppByKey(ctx context.Context, key string) (*App, error) {
	if !validKey(key) {
		return nil, ErrNotFound // no stored key has this shape: spare the query
	}
	a, err := s.oneApp(ctx, s.pool, selectApps+
		`WHERE a.id = (SELECT app_id FROM app_keys WHERE key = $1 AND revoked_at IS NULL)`+orderApps, key)
	return a, dbError("app by key", err)
}

func (s *PostgresStore) AppByID(ctx context.Context, id string) (*App, error) {
	if !validAppID(id) {
		return nil, ErrNotFound
	}
	a, err := s.oneApp(ctx, s.pool, selectApps+`WHERE a.id = $1`+orderApps, id)
	return a, dbError("app by id", err)
}

func (s *PostgresStore) Apps(ctx context.Context, tenantID string) ([]*App, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if tenantID == "" {
		rows, err = s.pool.Query(ctx, selectApps+orderApps)
	} else {
		rows, err = s.pool.Query(ctx, selectApps+`WHERE a.tenant_id = $1`+orderApps, tenantID)
	}
	if err != nil {
		return nil, dbError("apps", err)
	}
	apps, err := s.scanApps(rows)
	if err != nil {
		return nil, dbError("apps", err)
	}
	if apps == nil {
		apps = []*App{}
	}
	return apps, nil
}

func (s *PostgresStore) PutApp(ctx context.Context, app *App) error {
	a := cloneApp(app)
	if a.TenantID == "" {
		a.TenantID = DefaultTenantID
	}
	if err := a.Validate(); err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return dbError("put app", err)
	}
	defer func() { _ = tx.Rollback(ctx) }() // a no-op after Commit

	// One round trip for the whole app; results are read in order and the
	// first error aborts (the statements after it fail with the
	// transaction).
	b := &pgx.Batch{}
	if a.TenantID == DefaultTenantID {
		d := defaultTenant()
		b.Queue(`INSERT INTO tenants (id, name, plan, status) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO NOTHING`, d.ID, d.Name, d.Plan, d.Status)
	} else {
		b.Queue(`SELECT 1 FROM tenants WHERE id = $1`, a.TenantID)
	}
	// An app of another tenant is locked but left unchanged, and then no
	// row is returned.
	b.Queue(`INSERT INTO apps (id, tenant_id, name, enabled, settings) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, enabled = excluded.enabled,
			settings = excluded.settings, updated_at = now()
		WHERE apps.tenant_id = excluded.tenant_id
		RETURNING id`, a.ID, a.TenantID, a.Name, a.Enabled, a.Settings)
	listed := make([]string, len(a.Keys))
	for i, k := range a.Keys {
		listed[i] = k.Key
	}
	b.Queue(`UPDATE app_keys SET revoked_at = now()
		WHERE app_id = $1 AND revoked_at IS NULL AND key <> ALL($2)`, a.ID, listed)
	// Keys are inserted in the app's order, which gives new keys their
	// creation order (seq).
	for i, k := range a.Keys {
		kid, ct := s.keys.Seal(a.ID, k.Key, k.Secret)
		b.Queue(`INSERT INTO app_keys (app_id, key, secret_ciphertext, kid, secret_last4, position)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (app_id, key) DO UPDATE SET secret_ciphertext = excluded.secret_ciphertext,
				kid = excluded.kid, secret_last4 = excluded.secret_last4,
				position = excluded.position, revoked_at = NULL`,
			a.ID, k.Key, ct, kid, Last4(k.Secret), i)
	}

	err = func() error {
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		tag, err := br.Exec()
		if err != nil {
			return dbError("put app", err)
		}
		if a.TenantID != DefaultTenantID && tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: tenant %q", ErrNotFound, a.TenantID)
		}
		var id string
		if err := br.QueryRow().Scan(&id); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: app %s belongs to another tenant", ErrConflict, a.ID)
		} else if err != nil {
			return dbError("put app", err)
		}
		if _, err := br.Exec(); err != nil {
			return dbError("put app", err)
		}
		for _, k := range a.Keys {
			_, err := br.Exec()
			switch {
			case err == nil:
			case hasCode(err, uniqueViolation):
				return fmt.Errorf("%w: key %q belongs to another app", ErrConflict, k.Key)
			case hasCode(err, deadlockDetected):
				// Only another app claiming some of the same keys, in
				// another order, can lock these rows: both cannot win.
				return fmt.Errorf("%w: another app is claiming the same keys", ErrConflict)
			default:
				return dbError("put app", err)
			}
		}
		return nil
	}()
	if err != nil {
		return err
	}
	return dbError("put app", tx.Commit(ctx))
}

func (s *PostgresStore) UpdateApp(ctx context.Context, id string, change func(*App) error) (*App, error) {
	if !validAppID(id) {
		return nil, ErrNotFound
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, dbError("update app", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	old, err := s.oneApp(ctx, tx, selectApps+`WHERE a.id = $1`+orderApps+` FOR UPDATE OF a`, id)
	if err != nil {
		return nil, dbError("update app", err)
	}
	a := cloneApp(old)
	if err := change(a); err != nil {
		return nil, err
	}
	a.ID, a.TenantID, a.Keys, a.Suspended, a.Plan = old.ID, old.TenantID, old.Keys, old.Suspended, old.Plan
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `UPDATE apps SET name = $3, enabled = $4, settings = $5, updated_at = now()
		WHERE id = $1 AND tenant_id = $2`, a.ID, a.TenantID, a.Name, a.Enabled, a.Settings); err != nil {
		return nil, dbError("update app", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, dbError("update app", err)
	}
	return a, nil
}

func (s *PostgresStore) CreateTenant(ctx context.Context, t *Tenant) error {
	if err := validateTenant(t); err != nil {
		return err
	}
	status := t.Status
	if status == "" {
		status = TenantActive
	}
	var created *time.Time
	if !t.CreatedAt.IsZero() {
		created = &t.CreatedAt
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO tenants (id, name, plan, status, created_at)
		VALUES ($1, $2, $3, $4, COALESCE($5, now()))
		ON CONFLICT (id) DO NOTHING`, t.ID, t.Name, t.Plan, status, created)
	if err != nil {
		return dbError("create tenant", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: tenant %q exists", ErrConflict, t.ID)
	}
	return nil
}

const selectTenants = `SELECT id, name, plan, status, created_at FROM tenants `

func (s *PostgresStore) Tenant(ctx context.Context, id string) (*Tenant, error) {
	rows, err := s.pool.Query(ctx, selectTenants+`WHERE id = $1`, id)
	if err != nil {
		return nil, dbError("tenant", err)
	}
	t, err := pgx.CollectExactlyOneRow(rows, pgx.RowToAddrOfStructByPos[Tenant])
	return t, dbError("tenant", err)
}

func (s *PostgresStore) Tenants(ctx context.Context) ([]*Tenant, error) {
	rows, err := s.pool.Query(ctx, selectTenants+`ORDER BY id`)
	if err != nil {
		return nil, dbError("tenants", err)
	}
	ts, err := pgx.CollectRows(rows, pgx.RowToAddrOfStructByPos[Tenant])
	return ts, dbError("tenants", err)
}

func (s *PostgresStore) SetTenantStatus(ctx context.Context, id, status string) error {
	if status != TenantActive && status != TenantSuspended {
		return fmt.Errorf("%w: status must be %s or %s", ErrInvalid, TenantActive, TenantSuspended)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE tenants SET status = $2 WHERE id = $1`, id, status)
	if err != nil {
		return dbError("set tenant status", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// lockApp locks the app's row until the end of tx, so that key changes of
// one app are serialised, or returns ErrNotFound.
func lockApp(ctx context.Context, tx pgx.Tx, appID string) error {
	var id string
	return tx.QueryRow(ctx, `SELECT id FROM apps WHERE id = $1 FOR UPDATE`, appID).Scan(&id)
}

func (s *PostgresStore) CreateKey(ctx context.Context, appID string) (Key, error) {
	k := NewKey()
	kid, ct := s.keys.Seal(appID, k.Key, k.Secret)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockApp(ctx, tx, appID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO app_keys (app_id, key, secret_ciphertext, kid, secret_last4, position)
			VALUES ($1, $2, $3, $4, $5, (SELECT COALESCE(max(position) + 1, 0) FROM app_keys
				WHERE app_id = $1 AND revoked_at IS NULL))`,
			appID, k.Key, ct, kid, Last4(k.Secret))
		return err
	})
	if err != nil {
		return Key{}, dbError("create key", err)
	}
	return k, nil
}

func (s *PostgresStore) RevokeKey(ctx context.Context, appID, key string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockApp(ctx, tx, appID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT key FROM app_keys WHERE app_id = $1 AND revoked_at IS NULL`, appID)
		if err != nil {
			return err
		}
		active, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if !slices.Contains(active, key) {
			return fmt.Errorf("%w: key %q is not an active key of app %s", ErrNotFound, key, appID)
		}
		if len(active) == 1 {
			return fmt.Errorf("%w: key %q is the app's last active key; create another first", ErrInvalid, key)
		}
		_, err = tx.Exec(ctx, `UPDATE app_keys SET revoked_at = now() WHERE app_id = $1 AND key = $2`, appID, key)
		return err
	})
	return dbError("revoke key", err)
}

func (s *PostgresStore) Keys(ctx context.Context, appID string) ([]KeyInfo, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, secret_last4, created_at, revoked_at FROM app_keys
		WHERE app_id = $1 ORDER BY seq`, appID)
	if err != nil {
		return nil, dbError("keys", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowToStructByPos[KeyInfo])
	if err != nil {
		return nil, dbError("keys", err)
	}
	if len(keys) == 0 {
		// Every app has a key, so this is an unknown app.
		return nil, ErrNotFound
	}
	return keys, nil
}

// CheckKeyring returns an error naming every master key (kid) that a
// stored active secret needs and the keyring lacks; herald serve calls it
// at start-up so that a key dropped too early stops the node there rather
// than failing lookups (security.md SEC-2).
func (s *PostgresStore) CheckKeyring(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT kid FROM app_keys WHERE revoked_at IS NULL ORDER BY kid`)
	if err != nil {
		return dbError("check keyring", err)
	}
	kids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return dbError("check keyring", err)
	}
	var missing []string
	for _, kid := range kids {
		if _, ok := s.keys.aeads[kid]; !ok {
			missing = append(missing, strconv.Quote(kid))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("stored secrets need master keys %s, which HERALD_MASTER_KEYS does not list", strings.Join(missing, ", "))
	}
	return nil
}

// dbError maps no rows to ErrNotFound and prefixes other errors with the
// operation; sentinel errors of this package pass through unchanged.
func dbError(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict), errors.Is(err, ErrInvalid):
		return err
	}
	return fmt.Errorf("tenants: %s: %w", op, err)
}

// PostgreSQL error codes that PutApp maps to ErrConflict.
const (
	uniqueViolation  = "23505"
	deadlockDetected = "40P01"
)

// hasCode reports whether err is a PostgreSQL error with SQLSTATE code.
func hasCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}
