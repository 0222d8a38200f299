package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/services/audit"
	"github.com/heraldrt/herald/tenants"
)

// consoleFixture is a console on memory stores with tenants acme and
// globex, an operator of acme and a platform admin.
type consoleFixture struct {
	app   *fiber.App
	users *tenants.MemoryUsers
	audit *audit.MemoryLog
	now   time.Time
}

const testPassword = "correct horse battery"

func newConsole(t *testing.T) *consoleFixture {
	t.Helper()
	ctx := context.Background()
	store := tenants.NewMemoryStore()
	for _, id := range []string{"acme", "globex"} {
		if err := store.CreateTenant(ctx, &tenants.Tenant{ID: id, Name: strings.ToUpper(id[:1]) + id[1:], Plan: "free"}); err != nil {
			t.Fatal(err)
		}
	}
	f := &consoleFixture{users: tenants.NewMemoryUsers(store), audit: audit.NewMemoryLog(), now: time.Unix(1_800_000_000, 0)}
	hash, err := authz.HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	op := tenants.NewUser("op@acme.test", hash)
	admin := tenants.NewUser("admin@herald.test", hash)
	admin.PlatformAdmin = true
	for _, u := range []*tenants.User{op, admin} {
		if err := f.users.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.users.SetMembership(ctx, tenants.Membership{UserID: op.ID, TenantID: "acme", Role: tenants.RoleOperator}); err != nil {
		t.Fatal(err)
	}
	con := &Console{Users: f.users, Apps: store, RBAC: authz.NewConsoleRBAC(), Audit: f.audit,
		Limiter: authz.NewLimiter(authz.LimiterOptions{}), Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return f.now }}
	f.app = fiber.New()
	con.Routes(f.app)
	return f
}

// browser keeps cookies like a browser would for one site.
type browser struct {
	t       *testing.T
	f       *consoleFixture
	cookies map[string]string
}

func (f *consoleFixture) browser(t *testing.T) *browser {
	return &browser{t: t, f: f, cookies: map[string]string{}}
}

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := b.f.app.Test(req, -1)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// csrf returns the CSRF token of the page's form.
func (b *browser) csrf(page string) string {
	b.t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no CSRF field in:\n%s", page)
	}
	return m[1]
}

func (b *browser) login(email, password string) *http.Response {
	b.t.Helper()
	_, page := b.do(http.MethodGet, "/console/login", nil)
	resp, _ := b.do(http.MethodPost, "/console/login", url.Values{"csrf": {b.csrf(page)}, "email": {email}, "password": {password}})
	return resp
}

func TestConsoleLoginAndHome(t *testing.T) {
	f := newConsole(t)
	b := f.browser(t)
	resp, _ := b.do(http.MethodGet, "/console/", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login" {
		t.Fatalf("signed out home: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy", "Cross-Origin-Resource-Policy", "Permissions-Policy"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("missing %s", h)
		}
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
	}

	resp = b.login("OP@acme.test", testPassword)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	var sid *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			sid = c
		}
	}
	if sid == nil || !sid.Secure || !sid.HttpOnly || sid.SameSite != http.SameSiteLaxMode || sid.Path != "/" || sid.Domain != "" {
		t.Fatalf("session cookie: %+v", sid)
	}
	resp, page := b.do(http.MethodGet, "/console/", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "<code>acme</code>") || strings.Contains(page, "globex") || !strings.Contains(page, "operator") {
		t.Fatalf("operator's home: %d\n%s", resp.StatusCode, page)
	}

	admin := f.browser(t)
	admin.login("admin@herald.test", testPassword)
	if _, page := admin.do(http.MethodGet, "/console/", nil); !strings.Contains(page, "<code>acme</code>") || !strings.Contains(page, "<code>globex</code>") {
		t.Errorf("platform admin's home:\n%s", page)
	}
}

func TestConsoleLoginFailures(t *testing.T) {
	f := newConsole(t)
	b := f.browser(t)
	// No CSRF token: refused before the password is looked at.
	resp, _ := b.do(http.MethodPost, "/console/login", url.Values{"email": {"op@acme.test"}, "password": {testPassword}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without CSRF: %d", resp.StatusCode)
	}
	if resp := b.login("op@acme.test", "wrong password!"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", resp.StatusCode)
	}
	if resp := b.login("nobody@acme.test", testPassword); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unknown account: %d", resp.StatusCode)
	}
	var failed []audit.Entry
	_ = f.audit.Walk(context.Background(), audit.PlatformChain, func(e audit.Entry) error {
		if e.Action == "login.failed" {
			failed = append(failed, e)
		}
		return nil
	})
	if len(failed) != 2 || failed[0].Actor != "user:op@acme.test" || failed[1].Actor != "unknown" ||
		strings.Contains(failed[1].Target, "nobody") || !strings.HasPrefix(failed[1].Target, "email_sha256:") {
		t.Errorf("failed logins recorded: %+v", failed)
	}
	// Attempts per (account, IP) are limited; the right password does not
	// get through either once the limit is reached.
	for range 9 {
		b.login("op@acme.test", "wrong password!")
	}
	if resp := b.login("op@acme.test", testPassword); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("11th attempt: %d, want 429", resp.StatusCode)
	}
}

func TestConsoleSessions(t *testing.T) {
	f := newConsole(t)
	b := f.browser(t)
	b.login("op@acme.test", testPassword)
	_, page := b.do(http.MethodGet, "/console/", nil)
	csrf := b.csrf(page)

	// Logout needs the session's CSRF token.
	if resp, _ := b.do(http.MethodPost, "/console/logout", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without CSRF: %d", resp.StatusCode)
	}
	if resp, _ := b.do(http.MethodPost, "/console/logout", url.Values{"csrf": {"0" + csrf[1:]}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout with a wrong CSRF token: %d", resp.StatusCode)
	}
	stolen := b.cookies[sessionCookie]
	if resp, _ := b.do(http.MethodPost, "/console/logout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout: %d", resp.StatusCode)
	}
	// The old cookie no longer works, even if someone kept it.
	b.cookies[sessionCookie] = stolen
	if resp, _ := b.do(http.MethodGet, "/console/", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after logout: %d", resp.StatusCode)
	}

	// Idle expiry after 30 minutes; activity keeps a session alive.
	b = f.browser(t)
	b.login("op@acme.test", testPassword)
	f.now = f.now.Add(20 * time.Minute)
	if resp, _ := b.do(http.MethodGet, "/console/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("after 20 idle minutes: %d", resp.StatusCode)
	}
	f.now = f.now.Add(20 * time.Minute)
	if resp, _ := b.do(http.MethodGet, "/console/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("20 minutes after the last request: %d", resp.StatusCode)
	}
	f.now = f.now.Add(31 * time.Minute)
	if resp, _ := b.do(http.MethodGet, "/console/", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after 31 idle minutes: %d", resp.StatusCode)
	}
	// Absolute expiry after 12 hours, however active.
	b = f.browser(t)
	b.login("op@acme.test", testPassword)
	for range 25 {
		f.now = f.now.Add(29 * time.Minute)
		if resp, _ := b.do(http.MethodGet, "/console/", nil); resp.StatusCode != http.StatusOK {
			break
		}
	}
	if resp, _ := b.do(http.MethodGet, "/console/", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after 12 hours: %d", resp.StatusCode)
	}
}
