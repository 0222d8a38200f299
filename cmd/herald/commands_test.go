package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/pgtest"
)

// `herald publish` signs like the SDKs: its event reaches a subscriber, and
// a wrong secret is reported with the server's reason.
func TestPublishCommand(t *testing.T) {
	app := cred{ID: "1", Key: "key1", Secret: "secret1"}
	m := startMain(t, testConfig(appsJSON(appJSON(app, "", ""))))
	w := dial(t, m.Addr, app.Key)
	w.subscribeOK("news", "", "")
	var out bytes.Buffer
	args := []string{"--url", "http://" + m.Addr, "--app-id", "1", "--key", "key1", "--secret", "secret1", "news", "flash", `{"x":1}`}
	if err := publishCommand(t.Context(), args, &out); err != nil {
		t.Fatal(err)
	}
	if got := w.expectEvent("flash", "news").data(); got != `{"x":1}` {
		t.Errorf("data = %s", got)
	}
	args[7] = "wrong"
	err := publishCommand(t.Context(), args, &out)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "auth_signature") {
		t.Errorf("wrong secret: %v", err)
	}
}

// The operator CLI drives the management API: a tenant and an app are
// created, the app's key works, a rotation adds a second key, revoking the
// first stops it, and disabling the app stops the API for it.
func TestOperatorCLI(t *testing.T) {
	cfg := testConfig(appsJSON(appJSON(cred{ID: "1", Key: "key1", Secret: "s"}, "", "")))
	cfg.AdminToken = "op-token"
	m := startMain(t, cfg)
	run := func(object string, args ...string) []byte {
		t.Helper()
		var out bytes.Buffer
		full := append([]string{args[0], "--url", "http://" + m.Addr, "--token", "op-token", "--json"}, args[1:]...)
		if err := manageCommand(context.Background(), object, full, strings.NewReader(""), &out); err != nil {
			t.Fatalf("herald %s %v: %v", object, args, err)
		}
		return out.Bytes()
	}
	run("tenants", "create", "--name", "Acme", "--id", "acme")
	var created struct {
		App struct{ ID string }
		Key struct{ Key, Secret string }
	}
	if err := json.Unmarshal(run("apps", "create", "--tenant", "acme", "--name", "Chat", "--id", "77"), &created); err != nil {
		t.Fatal(err)
	}
	first := cred{ID: created.App.ID, Key: created.Key.Key, Secret: created.Key.Secret}
	channels := func(c cred) int {
		return signedRequest(t, m.Addr, c, http.MethodGet, "/apps/"+c.ID+"/channels", nil, nil).Status
	}
	if first.ID != "77" || channels(first) != http.StatusOK {
		t.Fatalf("the created app's key does not work: %+v", created)
	}
	var rotated struct{ Key, Secret string }
	if err := json.Unmarshal(run("keys", "rotate", "77"), &rotated); err != nil {
		t.Fatal(err)
	}
	second := cred{ID: "77", Key: rotated.Key, Secret: rotated.Secret}
	if a, b := channels(first), channels(second); a != http.StatusOK || b != http.StatusOK {
		t.Fatalf("both keys should work during a rotation: %d, %d (%+v)", a, b, rotated)
	}
	run("keys", "revoke", "77", first.Key)
	if channels(first) != http.StatusUnauthorized || channels(second) != http.StatusOK {
		t.Fatal("after revoking, only the new key should work")
	}
	if list := string(run("keys", "list", "77")); strings.Contains(list, second.Secret) || !strings.Contains(list, "revoked_at") {
		t.Errorf("keys list shows a secret or misses the revocation: %s", list)
	}
	run("apps", "disable", "77")
	if got := channels(second); got != http.StatusForbidden {
		t.Errorf("disabled app answered %d, want 403", got)
	}

	var out bytes.Buffer
	err := manageCommand(context.Background(), "tenants", []string{"list", "--url", "http://" + m.Addr, "--token", "wrong"}, strings.NewReader(""), &out)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v", err)
	}
	err = manageCommand(context.Background(), "apps", []string{"create", "--url", "http://" + m.Addr, "--token", "op-token", "--tenant", "acme", "--name", "x", "--settings", `{"limits":{"max_conections":1}}`}, strings.NewReader(""), &out)
	if err == nil || !strings.Contains(err.Error(), "max_conections") {
		t.Errorf("a misspelt setting should be refused by name: %v", err)
	}
}

// With a database, serve refuses an out-of-date schema and says what to
// run, refuses to run without a master key, and after `herald migrate`
// serves the configured apps without making (or printing) a demo app.
func TestServeOnPostgres(t *testing.T) {
	url := pgtest.SchemaURL(t)
	app := cred{ID: "1", Key: "key1", Secret: "CANARY-pg-secret-123456"}
	cfg := testConfig(appsJSON(appJSON(app, "", "")))
	cfg.DatabaseURL = url

	m := &Main{Config: cfg}
	if err := m.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "HERALD_MASTER_KEY") {
		t.Fatalf("no master key: %v", err)
	}
	_ = m.Close()
	cfg.MasterKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	m = &Main{Config: cfg}
	if err := m.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "herald migrate") {
		t.Fatalf("out-of-date schema: %v", err)
	}
	_ = m.Close()

	var out bytes.Buffer
	if err := migrateCommand(t.Context(), []string{"--database-url", url}, &out); err != nil || !strings.Contains(out.String(), "applied") {
		t.Fatalf("migrate: %v, %s", err, out.String())
	}
	m = startMain(t, cfg)
	if m.DemoApp != nil {
		t.Error("a demo app was made with a database")
	}
	if got := signedRequest(t, m.Addr, app, http.MethodGet, "/apps/1/channels", nil, nil).Status; got != http.StatusOK {
		t.Errorf("the configured app answered %d", got)
	}
	var banner bytes.Buffer
	printBanner(&banner, m)
	if strings.Contains(banner.String(), app.Secret) || !strings.Contains(banner.String(), "PostgreSQL") {
		t.Errorf("banner:\n%s", banner.String())
	}
}

// The profiler is never served on a public address.
func TestPprofOnlyOnLoopback(t *testing.T) {
	cfg := testConfig("")
	cfg.PprofAddr = "0.0.0.0:0"
	m := &Main{Config: cfg}
	err := m.Run(t.Context())
	_ = m.Close()
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("pprof on 0.0.0.0: %v", err)
	}
	if got := rawRequest(t, startMain(t, testConfig("")).Addr, http.MethodGet, "/debug/pprof/", nil).Status; got != http.StatusNotFound {
		t.Errorf("/debug/pprof/ on the public listener: %d, want 404", got)
	}
}

// The policy and limits commands: set from stdin, check (also a draft),
// versions, and limits; an invalid policy is refused naming the line.
func TestPolicyCLI(t *testing.T) {
	cfg := testConfig(appsJSON(appJSON(cred{ID: "1", Key: "key1", Secret: "s"}, "", "")))
	cfg.AdminToken = "op-token"
	m := startMain(t, cfg)
	run := func(stdin, object string, args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		full := append([]string{args[0], "--url", "http://" + m.Addr, "--token", "op-token"}, args[1:]...)
		err := manageCommand(context.Background(), object, full, strings.NewReader(stdin), &out)
		return out.String(), err
	}
	if _, err := run("allow * * subscribe\ndeny user:bob private-* *\n", "policy", "set", "1", "-"); err != nil {
		t.Fatal(err)
	}
	out, err := run("", "policy", "check", "--user", "bob", "--channel", "private-x", "1")
	if err != nil || !strings.Contains(out, "deny") || !strings.Contains(out, "line 2") {
		t.Errorf("check: %v\n%s", err, out)
	}
	out, err = run("allow * * *\n", "policy", "check", "--user", "bob", "--channel", "private-x", "--draft", "-", "1")
	if err != nil || !strings.Contains(out, "allow") {
		t.Errorf("check a draft: %v\n%s", err, out)
	}
	if _, err := run("allow * * subscribe\nallow * *\n", "policy", "set", "1", "-"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("an invalid policy: %v", err)
	}
	if out, err := run("", "policy", "versions", "1"); err != nil || !strings.Contains(out, "operator") {
		t.Errorf("versions: %v\n%s", err, out)
	}
	if out, err := run("", "apps", "limits", "1"); err != nil || !strings.Contains(out, "enterprise") || !strings.Contains(out, "publishes_per_second") {
		t.Errorf("limits: %v\n%s", err, out)
	}
	if out, err := run("", "plans", "list"); err != nil || !strings.Contains(out, "free") {
		t.Errorf("plans: %v\n%s", err, out)
	}
}

// README.md's configuration table names every flag of herald serve, with
// its variable, so the documentation cannot fall behind the code.
func TestReadmeListsEveryServeFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ef := newEnvFlags("serve", "")
	var cfg Config
	cfg.register(ef)
	ef.fs.VisitAll(func(f *flag.Flag) {
		if !bytes.Contains(readme, []byte("`--"+f.Name+"`")) {
			t.Errorf("README.md does not list --%s", f.Name)
		}
		if m := envInHelp.FindStringSubmatch(f.Usage); m != nil && !bytes.Contains(readme, []byte("`"+m[1]+"`")) {
			t.Errorf("README.md does not list %s", m[1])
		}
	})
}
