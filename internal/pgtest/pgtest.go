// Package pgtest gives tests a PostgreSQL schema of their own on the test
// server (HERALD_TEST_DATABASE_URL), dropped when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// URL returns HERALD_TEST_DATABASE_URL, or skips the test without it (the
// test command always sets it; scripts/backends up starts a server).
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("HERALD_TEST_DATABASE_URL")
	if url == "" {
		t.Skip("HERALD_TEST_DATABASE_URL is not set: run through scripts/test, or eval \"$(scripts/backends up)\"")
	}
	return url
}

// Schema creates an empty schema and returns a pool whose search_path is
// that schema, with the request paths' statement timeout. Both go when the
// test ends.
func Schema(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := URL(t)
	ctx := context.Background()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := pgx.Identifier{"test_" + hex.EncodeToString(b)}
	exec := func(sql string) error {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE SCHEMA " + schema.Sanitize()); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema[0]
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = "5000"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		if err := exec("DROP SCHEMA " + schema.Sanitize() + " CASCADE"); err != nil {
			t.Error(err)
		}
	})
	return pool
}
