package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed *.sql
var files embed.FS

// lockID is the pg_advisory_lock key that serialises Apply across nodes. It
// is fixed forever ("heraldmg" in ASCII) and database-wide, so two Herald
// deployments sharing one database (in different schemas) also take turns.
const lockID int64 = 0x68657261_6c646d67

// migration is one embedded file.
type migration struct {
	version int
	name    string // the file name, recorded in schema_migrations
	sql     string
}

// load reads the NNNN_name.sql files of fsys, ordered by version. Versions
// must be unique, so that a file added on two branches is caught here and
// not half-applied in production.
func load(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	ms := make([]migration, 0, len(names))
	for _, name := range names {
		prefix, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migrations: %s: name must be NNNN_name.sql", name)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations: %s and %s have the same version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// Apply applies every pending migration in order and returns the names of
// the files it applied (none when the schema is up to date). It holds an
// advisory lock on one connection while it runs: a second Apply, on this
// node or another, waits for the first and then finds nothing to do. Each
// file runs in its own transaction together with its schema_migrations
// row. The pool's statement_timeout does not apply (migrations may rewrite
// large tables); ctx bounds the whole run, including the wait for the lock.
// On error, the files applied before the failing one stay applied.
func Apply(ctx context.Context, pool *pgxpool.Pool) (applied []string, err error) {
	ms, err := load(files)
	if err != nil {
		return nil, err
	}
	return apply(ctx, pool, ms)
}

func apply(ctx context.Context, pool *pgxpool.Pool, ms []migration) (applied []string, err error) {
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	// The connection leaves the pool for good: closing it releases the
	// advisory lock and the session settings below even if ctx is already
	// done, and no pooled connection ever keeps them.
	conn := pc.Hijack()
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx) // the server drops the lock with the session either way
	}()

	if _, err := conn.Exec(ctx, "SET statement_timeout = 0"); err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
		return nil, fmt.Errorf("migrations: waiting for the migration lock: %w", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return nil, fmt.Errorf("migrations: creating schema_migrations: %w", err)
	}
	done, err := appliedVersions(ctx, conn)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if done[m.version] {
			continue
		}
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		}); err != nil {
			return applied, fmt.Errorf("migrations: %s: %w", m.name, err)
		}
		applied = append(applied, m.name)
	}
	return applied, nil
}

// Pending returns the names of the embedded files that the database has not
// applied yet, in order; all of them when schema_migrations does not exist.
// It takes no lock: its answer can be stale by the time it returns if
// another node is migrating.
func Pending(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	ms, err := load(files)
	if err != nil {
		return nil, err
	}
	return pending(ctx, pool, ms)
}

func pending(ctx context.Context, pool *pgxpool.Pool, ms []migration) ([]string, error) {
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	done := map[int]bool{}
	if exists {
		var err error
		if done, err = appliedVersions(ctx, pool); err != nil {
			return nil, err
		}
	}
	var names []string
	for _, m := range ms {
		if !done[m.version] {
			names = append(names, m.name)
		}
	}
	return names, nil
}

// querier is what appliedVersions needs of a pool or a connection.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func appliedVersions(ctx context.Context, q querier) (map[int]bool, error) {
	rows, err := q.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("migrations: reading schema_migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("migrations: reading schema_migrations: %w", err)
	}
	done := make(map[int]bool, len(versions))
	for _, v := range versions {
		done[v] = true
	}
	return done, nil
}
