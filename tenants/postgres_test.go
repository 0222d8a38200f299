package tenants

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/dbtest"
	"github.com/jackc/pgx/v5"
)

// masterKey returns a fresh master key in the HERALD_MASTER_KEY shape.
func masterKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func testKeyring(t *testing.T) *Keyring {
	t.Helper()
	k, err := ParseKeyring(masterKey(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPostgresStore(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return NewPostgresStore(dbtest.Migrated(t), testKeyring(t)) })
}

func TestCache_PostgresStore(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return NewCache(NewPostgresStore(dbtest.Migrated(t), testKeyring(t)), 0) })
}

// A dump of the database holds no plaintext secret (SEC-1).
func TestPostgresStore_SEC1_NoPlaintextAtRest(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Migrated(t)
	s := NewPostgresStore(pool, testKeyring(t))
	if err := s.PutApp(ctx, &App{ID: "1", Name: "n", Keys: []Key{{Key: "k1", Secret: NewSecret(canary)}}}); err != nil {
		t.Fatal(err)
	}
	created, err := s.CreateKey(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}

	// Every row of every table, as text (what pg_dump writes), and the raw
	// ciphertext bytes.
	var dump strings.Builder
	for _, table := range []string{"tenants", "apps", "app_keys", "schema_migrations"} {
		rows, err := pool.Query(ctx, "SELECT row_to_json(r)::text FROM "+pgx.Identifier{table}.Sanitize()+" r")
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		dump.WriteString(strings.Join(lines, "\n"))
	}
	rows, err := pool.Query(ctx, "SELECT secret_ciphertext FROM app_keys")
	if err != nil {
		t.Fatal(err)
	}
	cts, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	if len(cts) != 2 {
		t.Fatalf("%d app_keys rows, want 2", len(cts))
	}
	for _, secret := range []string{canary, created.Secret.Reveal()} {
		if strings.Contains(dump.String(), secret) || strings.Contains(dump.String(), hex.EncodeToString([]byte(secret))) {
			t.Errorf("the database holds a plaintext secret:\n%s", dump.String())
		}
		for _, ct := range cts {
			if bytes.Contains(ct, []byte(secret)) {
				t.Errorf("a ciphertext contains the plaintext secret")
			}
		}
	}
	if !strings.Contains(dump.String(), `"secret_last4":"`+canary[len(canary)-4:]+`"`) {
		t.Errorf("secret_last4 missing from the rows")
	}
}

// A ciphertext moved to another app's row does not decrypt there (SEC-1).
func TestPostgresStore_SEC1_SwappedCiphertextFails(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Migrated(t)
	s := NewPostgresStore(pool, testKeyring(t))
	for _, a := range []*App{
		{ID: "1", Keys: []Key{{Key: "k1", Secret: NewSecret("secret-one")}}},
		{ID: "2", Keys: []Key{{Key: "k2", Secret: NewSecret("secret-two")}}},
	} {
		if err := s.PutApp(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	// An attacker with write access to the table swaps the two secrets.
	if _, err := pool.Exec(ctx, `UPDATE app_keys k SET secret_ciphertext = o.secret_ciphertext
		FROM app_keys o WHERE k.app_id <> o.app_id`); err != nil {
		t.Fatal(err)
	}
	for _, lookup := range []func() (*App, error){
		func() (*App, error) { return s.AppByID(ctx, "1") },
		func() (*App, error) { return s.AppByKey(ctx, "k2") },
	} {
		a, err := lookup()
		if err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup after the swap = %+v, %v; want a decryption error", a, err)
		}
		if strings.Contains(err.Error(), "secret-one") || strings.Contains(err.Error(), "secret-two") {
			t.Errorf("error reveals a secret: %v", err)
		}
	}
	if _, err := s.Apps(ctx, ""); err == nil {
		t.Error("Apps after the swap succeeded")
	}
}

// Rotation: rows written under k1 still decrypt after k2 becomes active, new
// rows use k2, and dropping k1 too early fails naming k1 (SEC-2).
func TestPostgresStore_SEC2_Rotation(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Migrated(t)
	k1, k2 := masterKey(), masterKey()

	ring1, err := ParseKeyring(k1, "", "")
	if err != nil {
		t.Fatal(err)
	}
	s1 := NewPostgresStore(pool, ring1)
	if err := s1.PutApp(ctx, &App{ID: "1", Keys: []Key{{Key: "old", Secret: NewSecret("written-under-k1")}}}); err != nil {
		t.Fatal(err)
	}

	ring2, err := ParseKeyring("", "k1:"+k1+",k2:"+k2, "k2")
	if err != nil {
		t.Fatal(err)
	}
	s2 := NewPostgresStore(pool, ring2)
	if err := s2.CheckKeyring(ctx); err != nil {
		t.Errorf("CheckKeyring with both keys: %v", err)
	}
	a, err := s2.AppByKey(ctx, "old")
	if err != nil {
		t.Fatalf("a row written under k1 after k2 became active: %v", err)
	}
	if sec, _ := a.SecretFor("old"); sec.Reveal() != "written-under-k1" {
		t.Errorf("secret %q after rotation", sec.Reveal())
	}
	created, err := s2.CreateKey(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	kidOf := func(key string) string {
		var kid string
		if err := pool.QueryRow(ctx, "SELECT kid FROM app_keys WHERE app_id = $1 AND key = $2", "1", key).Scan(&kid); err != nil {
			t.Fatal(err)
		}
		return kid
	}
	if kidOf("old") != "k1" || kidOf(created.Key) != "k2" {
		t.Errorf("kids old=%s new=%s, want k1 and k2", kidOf("old"), kidOf(created.Key))
	}

	// k1 dropped while a row still needs it.
	ring3, err := ParseKeyring("", "k2:"+k2, "")
	if err != nil {
		t.Fatal(err)
	}
	s3 := NewPostgresStore(pool, ring3)
	_, err = s3.AppByID(ctx, "1")
	if err == nil || !strings.Contains(err.Error(), `"k1"`) {
		t.Fatalf("lookup without k1 = %v, want an error naming k1", err)
	}
	err2 := s3.CheckKeyring(ctx)
	if err2 == nil || !strings.Contains(err2.Error(), `"k1"`) || strings.Contains(err2.Error(), `"k2"`) {
		t.Fatalf("CheckKeyring without k1 = %v, want an error naming k1 only", err2)
	}
	for _, e := range []error{err, err2} {
		for _, key := range []string{k1, k2, k1[:16], k2[:16]} {
			if strings.Contains(e.Error(), key) {
				t.Errorf("error reveals key material: %v", e)
			}
		}
	}

	// Re-putting the app (what every node does at start-up for configured
	// apps) rewraps its secrets under the active key.
	if err := s2.PutApp(ctx, &App{ID: "1", Keys: []Key{{Key: "old", Secret: NewSecret("written-under-k1")}, created}}); err != nil {
		t.Fatal(err)
	}
	if kidOf("old") != "k2" {
		t.Errorf("kid after re-put %s, want k2", kidOf("old"))
	}
	if err := s3.CheckKeyring(ctx); err != nil {
		t.Errorf("CheckKeyring after rewrap: %v", err)
	}
}

// Every statement the store sends is parameterised; none is assembled with
// fmt (security.md §4, forbidden patterns).
func TestPostgresStore_NoFormattedSQL(t *testing.T) {
	src, err := os.ReadFile("postgres.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, banned := range []string{"fmt.Sprint", "QueryExecModeSimpleProtocol", "strings.Replace"} {
		if bytes.Contains(src, []byte(banned)) {
			t.Errorf("postgres.go uses %s", banned)
		}
	}
}

// Two apps claiming the same keys at once, in opposite orders, can lock
// each other's rows; the loser gets ErrConflict, never a raw deadlock error,
// and at most one of them wins.
func TestPostgresStore_OpposingKeyClaims(t *testing.T) {
	ctx := context.Background()
	s := NewPostgresStore(dbtest.Migrated(t), testKeyring(t))
	for round := range 5 {
		p, q := fmt.Sprintf("p%d", round), fmt.Sprintf("q%d", round)
		x := &App{ID: fmt.Sprintf("x%d", round), Keys: []Key{{Key: p, Secret: NewSecret("s")}, {Key: q, Secret: NewSecret("s")}}}
		y := &App{ID: fmt.Sprintf("y%d", round), Keys: []Key{{Key: q, Secret: NewSecret("s")}, {Key: p, Secret: NewSecret("s")}}}
		errs := make(chan error, 2)
		for _, a := range []*App{x, y} {
			go func() { errs <- s.PutApp(ctx, a) }()
		}
		wins := 0
		for range 2 {
			switch err := <-errs; {
			case err == nil:
				wins++
			case !errors.Is(err, ErrConflict):
				t.Errorf("round %d: PutApp = %v, want nil or ErrConflict", round, err)
			}
		}
		if wins > 1 {
			t.Errorf("round %d: both apps got the same keys", round)
		}
	}
}
