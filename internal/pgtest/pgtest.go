// Package pgtest gives tests a PostgreSQL schema of their own on the test
// server (HERALD_TEST_DATABASE_URL), dropped when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
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

// SchemaURL creates an empty schema and returns a URL of the test server
// whose search_path is that schema, for code that connects by URL. The
// schema is dropped when the test ends.
func SchemaURL(t testing.TB) string {
	t.Helper()
	url := URL(t)
	ctx := context.Background()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "test_" + hex.EncodeToString(b)
	exec := func(sql string) error {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE SCHEMA " + pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA " + pgx.Identifier{name}.Sanitize() + " CASCADE"); err != nil {
			t.Error(err)
		}
	})
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + name
}

// Schema returns a pool on a fresh schema (see SchemaURL) with the request
// paths' statement timeout, closed when the test ends.
func Schema(t testing.TB) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(SchemaURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = "5000"
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // registered last, so it runs before the schema is dropped
	return pool
}
