package web

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/services/api"
	"github.com/heraldrt/herald/services/audit"
	"github.com/heraldrt/herald/services/gateway"
	"github.com/heraldrt/herald/tenants"
)

// consoleFixture is a console on memory stores with tenants acme (app
// acme1, with two keys), globex (app globex1) and initech (no apps); an
// owner, an operator and a viewer of acme, an owner of globex and a
// platform admin. Its Manager publishes through a fake gateway.
type consoleFixture struct {
	app     *fiber.App
	con     *Console
	store   *tenants.MemoryStore
	users   *tenants.MemoryUsers
	audit   *audit.MemoryLog
	gateway *fakeGateway
	usage   *billing.MemoryUsage
	manager *api.Manager
	now     time.Time
	// acmeKeys are acme1's keys, oldest first.
	acmeKeys []string
}

const testPassword = "correct horse battery"

// testHash is testPassword's hash, made once: argon2id is slow on
// purpose, and most tests sign in without it (browser.signIn).
var testHash = sync.OnceValues(func() (string, error) { return authz.HashPassword(testPassword) })

// Users of the fixture, by role.
const (
	ownerEmail    = "owner@acme.test"
	operatorEmail = "op@acme.test"
	viewerEmail   = "viewer@acme.test"
	outsiderEmail = "owner@globex.test"
	adminEmail    = "admin@herald.test"
	testDebugKey  = "debug key of the test cluster"
)

func newConsole(t *testing.T) *consoleFixture {
	t.Helper()
	ctx := context.Background()
	store := tenants.NewMemoryStore()
	for _, id := range []string{"acme", "globex", "initech"} {
		if err := store.CreateTenant(ctx, &tenants.Tenant{ID: id, Name: strings.ToUpper(id[:1]) + id[1:], Plan: "free"}); err != nil {
			t.Fatal(err)
		}
	}
	f := &consoleFixture{store: store, users: tenants.NewMemoryUsers(store), audit: audit.NewMemoryLog(),
		gateway: &fakeGateway{subscriptions: map[string]int{}}, usage: billing.NewMemoryUsage(), now: time.Unix(1_800_000_000, 0)}
	for _, a := range []struct{ id, tenant, name string }{{"acme1", "acme", "Acme Chat"}, {"globex1", "globex", "Globex Feed"}} {
		app := tenants.NewApp(a.name)
		app.ID, app.TenantID = a.id, a.tenant
		if err := store.PutApp(ctx, app); err != nil {
			t.Fatal(err)
		}
	}
	second, err := store.CreateKey(ctx, "acme1")
	if err != nil {
		t.Fatal(err)
	}
	acme1, _ := store.AppByID(ctx, "acme1")
	f.acmeKeys = []string{acme1.Keys[0].Key, second.Key}

	hash, err := testHash()
	if err != nil {
		t.Fatal(err)
	}
	members := []struct {
		email, tenant string
		role          tenants.Role
	}{
		{ownerEmail, "acme", tenants.RoleOwner}, {operatorEmail, "acme", tenants.RoleOperator},
		{viewerEmail, "acme", tenants.RoleViewer}, {outsiderEmail, "globex", tenants.RoleOwner},
	}
	for _, m := range members {
		u := tenants.NewUser(m.email, hash)
		if err := f.users.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := f.users.SetMembership(ctx, tenants.Membership{UserID: u.ID, TenantID: m.tenant, Role: m.role}); err != nil {
			t.Fatal(err)
		}
	}
	admin := tenants.NewUser(adminEmail, hash)
	admin.PlatformAdmin = true
	if err := f.users.CreateUser(ctx, admin); err != nil {
		t.Fatal(err)
	}

	log := slog.New(slog.DiscardHandler)
	limiter := authz.NewLimiter(authz.LimiterOptions{})
	f.manager = &api.Manager{Apps: store, Gateway: f.gateway, Plans: billing.NewMemoryPlans(),
		Policies: authz.NewPolicies(authz.NewMemoryPolicies(), 0), Audit: f.audit, Limiter: limiter, Log: log, Users: f.users}
	f.con = &Console{Users: f.users, Apps: store, Manager: f.manager, RBAC: authz.NewConsoleRBAC(), Audit: f.audit,
		Limiter: limiter, Log: log, Now: func() time.Time { return f.now }, DebugKey: []byte(testDebugKey), Usage: f.usage}
	f.app = fiber.New()
	f.con.Routes(f.app)
	return f
}

// fakeGateway is the Manager's view of the cluster: it records
// publishes and answers subscription counts from a map.
type fakeGateway struct {
	mu            sync.Mutex
	subscriptions map[string]int            // "app/channel" → subscriptions
	connections   map[string]map[string]int // app → node → connections
	published     []published
	meter         billing.Meter
}

type published struct {
	app, channel, event, data string
}

var _ api.Gateway = (*fakeGateway)(nil)

func (g *fakeGateway) Publish(_ context.Context, app *tenants.App, out []gateway.Outgoing) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, o := range out {
		g.published = append(g.published, published{app.ID, o.Channel, o.Pub.Event, string(o.Pub.Data)})
	}
	return nil
}

func (g *fakeGateway) ReadHistory(context.Context, *tenants.App, string, gateway.HistoryQuery) (*gateway.HistoryPage, *gateway.HistoryError) {
	return nil, &gateway.HistoryError{Status: 404, Message: "the console's tests have no event log"}
}

func (g *fakeGateway) Channels(_ context.Context, appID, _ string, _ bool) ([]gateway.ChannelInfo, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []gateway.ChannelInfo
	for k, n := range g.subscriptions {
		if app, channel, _ := strings.Cut(k, "/"); app == appID && n > 0 {
			out = append(out, gateway.ChannelInfo{Name: channel, Subscriptions: n})
		}
	}
	return out, nil
}

func (g *fakeGateway) ConnectionsByNode(_ context.Context, appID string) (map[string]int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.connections[appID]), nil
}

func (g *fakeGateway) Channel(_ context.Context, appID, channel string) (gateway.ChannelInfo, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return gateway.ChannelInfo{Name: channel, Subscriptions: g.subscriptions[appID+"/"+channel]}, nil
}

func (g *fakeGateway) Users(context.Context, string, string) ([]string, error) { return nil, nil }

func (g *fakeGateway) TerminateUser(context.Context, string, string) error { return nil }

func (g *fakeGateway) InvalidateApp(context.Context, string) error { return nil }

func (g *fakeGateway) Meter() *billing.Meter { return &g.meter }

func (g *fakeGateway) sent() []published {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.published)
}

// browser keeps cookies like a browser would for one site.
type browser struct {
	t       *testing.T
	f       *consoleFixture
	cookies map[string]string
	// token is the session's CSRF token after signIn.
	token string
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

// signIn starts a session for the user directly in the store, as a
// successful login would, without the cost of checking a password.
func (b *browser) signIn(email string) *browser {
	b.t.Helper()
	ctx := context.Background()
	u, err := b.f.users.UserByEmail(ctx, email)
	if err != nil {
		b.t.Fatal(err)
	}
	s := tenants.Session{ID: randomToken(), UserID: u.ID, CSRF: randomToken(), CreatedAt: b.f.now, LastSeen: b.f.now, ExpiresAt: b.f.now.Add(DefaultLifetime)}
	if err := b.f.users.CreateSession(ctx, s); err != nil {
		b.t.Fatal(err)
	}
	b.cookies[sessionCookie], b.token = s.ID, s.CSRF
	return b
}

// get fetches a page.
func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	resp, page := b.do(http.MethodGet, path, nil)
	return resp.StatusCode, page
}

// post submits a form with the session's CSRF token.
func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.token)
	return b.do(http.MethodPost, path, form)
}

// wrongToken returns a token that differs from token in its first digit.
func wrongToken(token string) string {
	if token[0] == '0' {
		return "1" + token[1:]
	}
	return "0" + token[1:]
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
	if resp, _ := b.do(http.MethodPost, "/console/logout", url.Values{"csrf": {wrongToken(csrf)}}); resp.StatusCode != http.StatusForbidden {
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
