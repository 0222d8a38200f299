// Package dbtest gives tests a PostgreSQL schema of their own with every
// migration applied, on the test server of package pgtest, dropped when the
// test ends. (It is not part of pgtest because the migrations' own tests use
// pgtest.)
package dbtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldrt/herald/internal/pgtest"
	"github.com/heraldrt/herald/migrations"
)

// Migrated returns a pool on a fresh, migrated schema.
func Migrated(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.Schema(t)
	migrate(t, pool)
	return pool
}

// URL returns the URL of a fresh, migrated schema, for tests that open
// several pools on it (several nodes).
func URL(t testing.TB) string {
	t.Helper()
	url := pgtest.SchemaURL(t)
	migrate(t, Pool(t, url))
	return url
}

// Pool returns a pool on url, closed when the test ends (before the schema
// is dropped, as cleanups run last registered first).
func Pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func migrate(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := migrations.Apply(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
}
