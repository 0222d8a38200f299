package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldrt/herald/internal/pgtest"
	"github.com/heraldrt/herald/services/audit"
)

// auditedChanges makes one change through every mutating management route
// and returns the actions they should have recorded, in order.
func auditedChanges(t *testing.T, addr string) []string {
	t.Helper()
	call := func(method, path string, body any, want int) []byte {
		t.Helper()
		r := operatorRequest(t, addr, opToken, method, path, body)
		if r.Status != want {
			t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
		}
		return r.Body
	}
	call(http.MethodPost, "/v1/tenants", map[string]any{"id": "acme", "name": "Acme"}, http.StatusCreated)
	var created struct {
		App struct{ ID string } `json:"app"`
	}
	if err := json.Unmarshal(call(http.MethodPost, "/v1/apps", map[string]any{"tenant_id": "acme", "name": "Chat", "id": "77"}, http.StatusCreated), &created); err != nil {
		t.Fatal(err)
	}
	call(http.MethodPatch, "/v1/apps/77", map[string]any{"name": "Chat 2"}, http.StatusOK)
	var key struct{ Key string }
	if err := json.Unmarshal(call(http.MethodPost, "/v1/apps/77/keys", nil, http.StatusCreated), &key); err != nil {
		t.Fatal(err)
	}
	call(http.MethodDelete, "/v1/apps/77/keys/"+key.Key, nil, http.StatusOK)
	call(http.MethodPut, "/v1/apps/77/policy", map[string]string{"policy": "allow * * *\n"}, http.StatusOK)
	call(http.MethodPost, "/v1/apps/77/disable", nil, http.StatusOK)
	call(http.MethodPost, "/v1/tenants/acme/suspend", nil, http.StatusOK)
	call(http.MethodPost, "/v1/tenants/acme/activate", nil, http.StatusOK)
	// Refused changes record nothing.
	operatorRequest(t, addr, opToken, http.MethodPut, "/v1/apps/77/policy", map[string]string{"policy": "bad"})
	operatorRequest(t, addr, opToken, http.MethodPost, "/v1/tenants", map[string]any{"name": "X", "plan": "gold"})
	return []string{"tenant.create", "app.create", "app.update", "key.create", "key.revoke", "policy.replace", "app.disable", "tenant.suspend", "tenant.activate"}
}

// collect returns every action of the log's chains with its actor.
func collect(t *testing.T, log audit.Log) (actions []string) {
	t.Helper()
	ctx := context.Background()
	chains, err := log.Chains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var entries []audit.Entry
	for _, ch := range chains {
		if err := log.Walk(ctx, ch, func(e audit.Entry) error { entries = append(entries, e); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// Order by time across chains, as the changes were made one by one.
	slices.SortStableFunc(entries, func(a, b audit.Entry) int { return a.Time.Compare(b.Time) })
	for _, e := range entries {
		if e.Actor != "operator" || e.ActorIP != "127.0.0.1" {
			t.Errorf("%s recorded actor %q from %q", e.Action, e.Actor, e.ActorIP)
		}
		actions = append(actions, e.Action)
	}
	return actions
}

// Every change through the management API writes exactly one audit entry,
// by the operator, in the tenant's chain (platform actions in the
// platform chain); refused requests write none (AUD-3).
func TestManagementChangesAreAudited(t *testing.T) {
	cfg := testConfig("")
	cfg.AdminToken = opToken
	m := startMain(t, cfg)
	want := auditedChanges(t, m.Addr)
	if got := collect(t, m.backends.audit); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("audited actions:\n got %v\nwant %v", got, want)
	}
	chains, _ := m.backends.audit.Chains(context.Background())
	if strings.Join(chains, ",") != "acme,platform" {
		t.Errorf("chains %v, want acme and platform", chains)
	}
}

// With PostgreSQL, `herald audit verify` passes an untouched log and,
// after a row is altered behind Herald's back, fails naming the entry.
func TestAuditVerifyDetectsTampering(t *testing.T) {
	cfg, db := postgresConfig(t)
	m := startMain(t, cfg)
	auditedChanges(t, m.Addr)

	var out bytes.Buffer
	if err := auditCommand(t.Context(), []string{"verify", "--database-url", db}, &out); err != nil {
		t.Fatalf("verify of an untouched log: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "chain acme: intact, 6 entries") {
		t.Errorf("verify output:\n%s", out.String())
	}

	conn, err := pgx.Connect(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	// The table refuses edits; a database owner can still switch the
	// guard off, which is what the chain is there to catch.
	if _, err := conn.Exec(t.Context(), `UPDATE audit_log SET target = 'x' WHERE chain = 'acme' AND seq = 3`); err == nil {
		t.Fatal("audit_log accepted an UPDATE")
	}
	for _, sql := range []string{
		`ALTER TABLE audit_log DISABLE TRIGGER USER`,
		`UPDATE audit_log SET target = 'someone else' WHERE chain = 'acme' AND seq = 3`,
		`ALTER TABLE audit_log ENABLE TRIGGER USER`,
	} {
		if _, err := conn.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	out.Reset()
	err = auditCommand(t.Context(), []string{"verify", "--database-url", db}, &out)
	if !errors.Is(err, errChainBroken) || !strings.Contains(out.String(), "chain acme: BROKEN at seq 3") || !strings.Contains(out.String(), "chain platform: intact") {
		t.Errorf("verify after an edit: %v\n%s", err, out.String())
	}
}

// With no console users, start-up makes a platform admin: from the
// configured email and password, or admin@localhost with a generated
// password the banner shows once; a second start makes none.
func TestFirstConsoleAdmin(t *testing.T) {
	m := startMain(t, testConfig(""))
	if m.FirstAdmin == nil || m.FirstAdmin.Email != "admin@localhost" || len(m.FirstAdmin.Password) < 20 {
		t.Fatalf("generated admin: %+v", m.FirstAdmin)
	}
	var banner bytes.Buffer
	printBanner(&banner, m)
	if !strings.Contains(banner.String(), m.FirstAdmin.Password) || !strings.Contains(banner.String(), "http://localhost:") || !strings.Contains(banner.String(), "/console/") {
		t.Errorf("banner does not show the console and the generated password:\n%s", banner.String())
	}

	cfg := testConfig("")
	cfg.AdminEmail, cfg.AdminPassword = "Ann@Example.com", "a long enough password"
	m = startMain(t, cfg)
	if m.FirstAdmin == nil || m.FirstAdmin.Password != "" {
		t.Fatalf("configured admin: %+v", m.FirstAdmin)
	}
	u, err := m.backends.users.UserByEmail(t.Context(), "ann@example.com")
	if err != nil || !u.PlatformAdmin {
		t.Fatalf("configured admin stored: %+v, %v", u, err)
	}
	banner.Reset()
	printBanner(&banner, m)
	if strings.Contains(banner.String(), cfg.AdminPassword) {
		t.Error("the banner printed a configured password")
	}
	cfg.AdminPassword = "short"
	bad := &Main{Config: cfg}
	if err := bad.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "HERALD_ADMIN_PASSWORD") {
		t.Errorf("a too-short admin password: %v", err)
	}
	_ = bad.Close()
}

// herald users create adds a console user to PostgreSQL with the password
// from standard input, and a membership when asked.
func TestUsersCreateCommand(t *testing.T) {
	cfg, db := postgresConfig(t)
	m := startMain(t, cfg)
	if r := operatorRequest(t, m.Addr, opToken, http.MethodPost, "/v1/tenants", map[string]any{"id": "acme", "name": "Acme"}); r.Status != http.StatusCreated {
		t.Fatal(string(r.Body))
	}
	var out bytes.Buffer
	err := usersCommand(t.Context(), []string{"create", "--database-url", db, "--email", "ann@acme.test", "--tenant", "acme", "--role", "owner"},
		strings.NewReader("correct horse battery\n"), &out)
	if err != nil || !strings.Contains(out.String(), "created console user ann@acme.test") {
		t.Fatalf("users create: %v %s", err, out.String())
	}
	u, err := m.backends.users.UserByEmail(t.Context(), "ann@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := m.backends.users.Memberships(t.Context(), u.ID)
	if len(ms) != 1 || ms[0].TenantID != "acme" || ms[0].Role != "owner" || u.PlatformAdmin {
		t.Errorf("user %+v memberships %+v", u, ms)
	}
	var created []audit.Entry
	_ = m.backends.audit.Walk(t.Context(), audit.PlatformChain, func(e audit.Entry) error {
		if e.Action == "user.create" {
			created = append(created, e)
		}
		return nil
	})
	if len(created) != 1 || created[0].Target != u.ID || created[0].Details["role"] != "owner" {
		t.Errorf("user creation audited as %+v", created)
	}
	if err := usersCommand(t.Context(), []string{"create", "--database-url", db, "--email", "bob@acme.test"}, strings.NewReader("short\n"), &out); err == nil {
		t.Error("a short password was accepted")
	}
}

// With an audit key, nodes anchor the chains' heads; verify with the
// public key then catches a tail deleted behind Herald's back, which the
// chain alone cannot (AUD-2).
func TestAuditAnchorsCatchTruncation(t *testing.T) {
	var keys bytes.Buffer
	if err := auditCommand(t.Context(), []string{"keygen"}, &keys); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(keys.String()), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	cfg, db := postgresConfig(t)
	cfg.AuditKey, cfg.AuditAnchorInterval = env["HERALD_AUDIT_KEY"], 50*time.Millisecond
	m := startMain(t, cfg)
	auditedChanges(t, m.Addr)
	verify := func() (string, error) {
		var out bytes.Buffer
		err := auditCommand(t.Context(), []string{"verify", "--database-url", db, "--audit-public-key", env["HERALD_AUDIT_PUBLIC_KEY"]}, &out)
		return out.String(), err
	}
	waitFor(t, "the heads to be anchored", func() bool {
		out, err := verify()
		return err == nil && strings.Contains(out, "chain acme: intact, 6 entries") && !strings.Contains(out, " 0 anchors")
	})
	conn, err := pgx.Connect(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if err := m.Close(); err != nil { // no new anchors from here on
		t.Fatal(err)
	}
	for _, sql := range []string{
		`ALTER TABLE audit_log DISABLE TRIGGER USER`,
		`DELETE FROM audit_log WHERE chain = 'acme' AND seq > 4`,
		`ALTER TABLE audit_log ENABLE TRIGGER USER`,
	} {
		if _, err := conn.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	out, err := verify()
	if !errors.Is(err, errChainBroken) || !strings.Contains(out, "chain acme: BROKEN") {
		t.Errorf("verify after the tail was cut: %v\n%s", err, out)
	}
}

// postgresConfig is a node configuration on a fresh PostgreSQL schema
// (migrated at start) with the management API on; db is the schema's URL.
func postgresConfig(t *testing.T) (cfg Config, db string) {
	t.Helper()
	db = pgtest.SchemaURL(t)
	cfg = testConfig("")
	cfg.AdminToken = opToken
	cfg.DatabaseURL, cfg.Migrate = db, true
	cfg.MasterKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	return cfg, db
}
