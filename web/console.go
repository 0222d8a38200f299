package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/services/api"
	"github.com/heraldrt/herald/services/audit"
	"github.com/heraldrt/herald/services/gateway"
	"github.com/heraldrt/herald/tenants"
)

//go:embed templates
var templateFiles embed.FS

// pages are parsed once; each page template defines "content" inside the
// shared layout.
var pages = parsePages("login", "home", "error", "tenant", "app", "policy", "broadcast", "audit", "live", "debug", "usage", "members", "join", "signup")

// templateFuncs are the helpers the page templates share.
var templateFuncs = template.FuncMap{"when": when}

func parsePages(names ...string) map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range names {
		out[name] = template.Must(template.New("layout.html").Funcs(templateFuncs).
			ParseFS(templateFiles, "templates/layout.html", "templates/parts.html", "templates/"+name+".html"))
	}
	return out
}

// when shows a time the same way on every page: in UTC, to the second.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// Session cookie and login defaults (security.md §3).
const (
	sessionCookie = "__Host-herald_sid"
	// loginCSRFCookie carries the login form's CSRF token before there is
	// a session (double submit).
	loginCSRFCookie = "__Host-herald_lcsrf"
	DefaultIdle     = 30 * time.Minute
	DefaultLifetime = 12 * time.Hour
	// touchEvery bounds how often a request writes the session's last-seen
	// time: idle expiry does not need it to the second.
	touchEvery = time.Minute
)

// Users is what the console needs of the user store (tenants.Users).
type Users interface {
	UserByEmail(ctx context.Context, email string) (*tenants.User, error)
	UserByID(ctx context.Context, id string) (*tenants.User, error)
	Memberships(ctx context.Context, userID string) ([]tenants.Membership, error)
	CreateSession(ctx context.Context, s tenants.Session) error
	Session(ctx context.Context, id string) (*tenants.Session, error)
	TouchSession(ctx context.Context, id string, lastSeen time.Time) error
	DeleteSession(ctx context.Context, id string) error
	Members(ctx context.Context, tenantID string) ([]tenants.Membership, error)
	Invite(ctx context.Context, token string, now time.Time) (*tenants.Invite, error)
	Invites(ctx context.Context, tenantID string) ([]tenants.Invite, error)
}

// Console serves the admin console under /console. Its zero values are
// not usable: fill every field but Now, Idle and Lifetime.
type Console struct {
	Users Users
	Apps  tenants.Store
	// Manager makes every change, exactly as the management API does:
	// validated, announced to every node and audited.
	Manager *api.Manager
	// DebugKey signs debug-stream tokens; the gateway's Config.DebugKey.
	DebugKey []byte
	// Usage holds the apps' usage by minute, for the usage page.
	Usage billing.UsageStore
	// Mailer emails invite links; nil (the default) leaves that to the
	// owner.
	Mailer  Mailer
	RBAC    *authz.ConsoleRBAC
	Audit   audit.Log
	Limiter *authz.Limiter
	Proxies gateway.Proxies
	Log     *slog.Logger
	// Now is the clock; Idle and Lifetime bound a session (defaults 30
	// min idle, 12 h absolute).
	Now      func() time.Time
	Idle     time.Duration
	Lifetime time.Duration
	// SignUp says who may create an account: "off" (the default, also
	// when empty) and "invite" only through invite links, "open" anyone,
	// who then gets a new tenant on the free plan (/console/signup).
	SignUp string
}

// viewer is the signed-in user of a request.
type viewer struct {
	user        *tenants.User
	session     *tenants.Session
	memberships []tenants.Membership
}

const localViewer = "herald.console.viewer"

// Routes registers the console's routes on r.
func (con *Console) Routes(r fiber.Router) {
	if con.Now == nil {
		con.Now = time.Now
	}
	if con.Idle <= 0 {
		con.Idle = DefaultIdle
	}
	if con.Lifetime <= 0 {
		con.Lifetime = DefaultLifetime
	}
	g := r.Group("/console", consoleHeaders)
	g.Get("/login", con.loginPage)
	g.Post("/login", con.login)
	g.Post("/logout", con.signedIn, con.checkCSRF, con.logout)
	g.Get("/", con.signedIn, con.home)
	g.Post("/tenants", con.signedIn, con.checkCSRF, con.createTenant)
	g.Get("/join/:token", con.joinPage)
	g.Post("/join/:token", con.join)
	g.Get("/signup", con.signupPage)
	g.Post("/signup", con.signup)
	for _, rt := range consoleRoutes {
		handlers := []fiber.Handler{con.signedIn}
		if rt.method != fiber.MethodGet {
			handlers = append(handlers, con.checkCSRF)
		}
		handlers = append(handlers, con.authorize(rt), func(c *fiber.Ctx) error { return rt.handle(con, c) })
		if rt.method == fiber.MethodGet {
			g.Get(rt.path, handlers...) // and HEAD, like the other pages
		} else {
			g.Add(rt.method, rt.path, handlers...)
		}
	}
}

// consoleHeaders sets the security headers of security.md §3 on every
// console answer; nothing the console serves may be cached.
func consoleHeaders(c *fiber.Ctx) error {
	for k, v := range consoleSecurityHeaders {
		c.Set(k, v)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Next()
}

var consoleSecurityHeaders = map[string]string{
	"Content-Security-Policy":      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; require-trusted-types-for 'script'",
	"X-Frame-Options":              "DENY",
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Permissions-Policy":           "camera=(), microphone=(), geolocation=()",
}

func (con *Console) render(c *fiber.Ctx, status int, page string, data any) error {
	var b strings.Builder
	if err := pages[page].ExecuteTemplate(&b, "layout", data); err != nil {
		con.Log.Error("console template failed", "page", page, "err", err)
		return fiber.NewError(fiber.StatusInternalServerError, "internal server error")
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).SendString(b.String())
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// sameToken compares two tokens in constant time; empty never matches.
func sameToken(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (con *Console) setCookie(c *fiber.Ctx, name, value string, maxAge time.Duration) {
	// __Host- cookies must be Secure, Path=/ and without Domain; browsers
	// accept Secure cookies from http://localhost, and anywhere else the
	// console belongs behind TLS.
	c.Cookie(&fiber.Cookie{Name: name, Value: value, Path: "/", Secure: true, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		MaxAge: int(maxAge / time.Second), Expires: con.Now().Add(maxAge)})
}

func (con *Console) clearCookie(c *fiber.Ctx, name string) {
	c.Cookie(&fiber.Cookie{Name: name, Value: "", Path: "/", Secure: true, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		MaxAge: -1, Expires: time.Unix(0, 0)})
}

func (con *Console) clientIP(c *fiber.Ctx) netip.Addr {
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	return con.Proxies.ClientIP(peer, c.Get(fiber.HeaderXForwardedFor))
}

func (con *Console) loginPage(c *fiber.Ctx) error {
	if v, _ := con.lookup(c); v != nil {
		return c.Redirect("/console/", fiber.StatusSeeOther)
	}
	return con.showLogin(c, fiber.StatusOK, "", "")
}

// showLogin renders the login form with a fresh CSRF token in a cookie and
// the form (double submit: a cross-site form cannot read the cookie).
func (con *Console) showLogin(c *fiber.Ctx, status int, email, problem string) error {
	token := randomToken()
	con.setCookie(c, loginCSRFCookie, token, time.Hour)
	return con.render(c, status, "login", map[string]any{"Title": "Sign in", "CSRF": token, "Email": email, "Error": problem,
		"SignUpOpen": con.SignUp == SignUpOpen})
}

// Login attempts are limited per client IP and per (account, IP) pair, so
// neither a password sprayer nor a guesser against one account gets far,
// and nobody can lock an account from elsewhere (security.md §3).
var (
	loginPerIP      = authz.PerMinute(30)
	loginPerAccount = authz.Rate{Limit: 10, Period: 15 * time.Minute}
)

func (con *Console) login(c *fiber.Ctx) error {
	ctx := c.UserContext()
	email := strings.ToLower(strings.TrimSpace(c.FormValue("email")))
	if !sameToken(c.Cookies(loginCSRFCookie), c.FormValue("csrf")) {
		return fiber.NewError(fiber.StatusForbidden, "the sign-in form expired or did not come from this site: reload the page and try again")
	}
	ip := con.clientIP(c).String()
	if v, err := con.Limiter.Take(ctx, authz.GlobalScope, "console-login-ip", ip, loginPerIP, 1); err != nil || !v.Allowed {
		return con.showLogin(c, fiber.StatusTooManyRequests, email, "Too many sign-in attempts from your address. Wait a minute and try again.")
	}
	if v, err := con.Limiter.Take(ctx, authz.GlobalScope, "console-login-acct", email+"|"+ip, loginPerAccount, 1); err != nil || !v.Allowed {
		return con.showLogin(c, fiber.StatusTooManyRequests, email, "Too many sign-in attempts for this account. Wait 15 minutes and try again.")
	}
	password := c.FormValue("password")
	user, err := con.Users.UserByEmail(ctx, email)
	switch {
	case errors.Is(err, tenants.ErrNotFound):
		authz.DummyCheck(password)
	case err != nil:
		con.Log.Error("console user lookup failed", "err", err)
		return fiber.NewError(fiber.StatusServiceUnavailable, "sign-in is temporarily unavailable, retry")
	}
	if user == nil || user.Disabled || !authz.CheckPassword(user.PasswordHash, password) {
		con.auditLogin(c, user, email, "login.failed")
		return con.showLogin(c, fiber.StatusUnauthorized, email, "Wrong email or password.")
	}
	if _, err := con.startSession(c, user); err != nil {
		return err
	}
	con.auditLogin(c, user, email, "login")
	return c.Redirect("/console/", fiber.StatusSeeOther)
}

// startSession signs user in: a new session, its cookie, and the login
// form's CSRF cookie cleared.
func (con *Console) startSession(c *fiber.Ctx, user *tenants.User) (*tenants.Session, error) {
	now := con.Now()
	s := tenants.Session{ID: randomToken(), UserID: user.ID, CSRF: randomToken(), CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(con.Lifetime)}
	if err := con.Users.CreateSession(c.UserContext(), s); err != nil {
		con.Log.Error("console session create failed", "err", err)
		return nil, fiber.NewError(fiber.StatusServiceUnavailable, "sign-in is temporarily unavailable, retry")
	}
	con.clearCookie(c, loginCSRFCookie)
	con.setCookie(c, sessionCookie, s.ID, con.Lifetime)
	return &s, nil
}

// auditLogin records a sign-in or a failed one in the platform chain. An
// unknown account is recorded by the hash of what was typed: it may be a
// password typed into the wrong field.
func (con *Console) auditLogin(c *fiber.Ctx, user *tenants.User, email, action string) {
	e := audit.Entry{Chain: audit.PlatformChain, Action: action, ActorIP: con.clientIP(c).String()}
	if user != nil {
		e.Actor, e.Target = "user:"+user.Email, user.ID
	} else {
		sum := sha256.Sum256([]byte(email))
		e.Actor, e.Target = "unknown", "email_sha256:"+hex.EncodeToString(sum[:])
	}
	if _, err := con.Audit.Append(c.UserContext(), e); err != nil {
		con.Log.Error("audit append failed", "action", action, "err", err)
	}
}

// lookup returns the request's signed-in user, or nil: no cookie, an
// unknown or expired session, an idle one, or a disabled user.
func (con *Console) lookup(c *fiber.Ctx) (*viewer, error) {
	id := c.Cookies(sessionCookie)
	if id == "" {
		return nil, nil
	}
	ctx := c.UserContext()
	s, err := con.Users.Session(ctx, id)
	if errors.Is(err, tenants.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := con.Now()
	if now.Sub(s.LastSeen) > con.Idle || !now.Before(s.ExpiresAt) {
		_ = con.Users.DeleteSession(ctx, id)
		return nil, nil
	}
	user, err := con.Users.UserByID(ctx, s.UserID)
	if errors.Is(err, tenants.ErrNotFound) || (err == nil && user.Disabled) {
		_ = con.Users.DeleteSession(ctx, id)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if now.Sub(s.LastSeen) > touchEvery {
		if err := con.Users.TouchSession(ctx, id, now); err != nil {
			return nil, err
		}
	}
	ms, err := con.Users.Memberships(ctx, user.ID)
	if err != nil {
		return nil, err
	}
	return &viewer{user: user, session: s, memberships: ms}, nil
}

// signedIn lets only signed-in users through; others go to the login page.
func (con *Console) signedIn(c *fiber.Ctx) error {
	v, err := con.lookup(c)
	if err != nil {
		con.Log.Error("console session lookup failed", "err", err)
		return fiber.NewError(fiber.StatusServiceUnavailable, "the console is temporarily unavailable, retry")
	}
	if v == nil {
		con.clearCookie(c, sessionCookie)
		return c.Redirect("/console/login", fiber.StatusSeeOther)
	}
	c.Locals(localViewer, v)
	return c.Next()
}

// checkCSRF requires the session's CSRF token in a state-changing form.
func (con *Console) checkCSRF(c *fiber.Ctx) error {
	if !sameToken(viewerOf(c).session.CSRF, c.FormValue("csrf")) {
		return con.fail(c, fiber.StatusForbidden, "The form expired or did not come from this site. Reload the page and try again.")
	}
	return c.Next()
}

func (con *Console) logout(c *fiber.Ctx) error {
	v := viewerOf(c)
	if err := con.Users.DeleteSession(c.UserContext(), v.session.ID); err != nil {
		con.Log.Error("console session delete failed", "err", err)
	}
	con.clearCookie(c, sessionCookie)
	return c.Redirect("/console/login", fiber.StatusSeeOther)
}

// tenantRow is one line of the home page.
type tenantRow struct {
	Tenant *tenants.Tenant
	Role   string
	Apps   int
}

// homePage is the tenants list.
type homePage struct {
	frame
	Tenants []tenantRow
	// The create-tenant form (platform admins): plans to choose from, and
	// after a refused attempt what was typed and why.
	Plans       []string
	Form        struct{ ID, Name, Plan string }
	CreateError string
}

// home lists the tenants the user can see: all of them for a platform
// admin, else those of the user's memberships.
func (con *Console) home(c *fiber.Ctx) error {
	return con.showHome(c, fiber.StatusOK, homePage{})
}

// showHome renders the tenants list with page's form state.
func (con *Console) showHome(c *fiber.Ctx, status int, page homePage) error {
	v := viewerOf(c)
	ctx := c.UserContext()
	all, err := con.Apps.Tenants(ctx)
	if err != nil {
		return con.unavailable(c, "tenant list", err)
	}
	var rows []tenantRow
	for _, t := range all {
		if !con.RBAC.Allowed(v.user.PlatformAdmin, v.memberships, t.ID, authz.PermView) {
			continue
		}
		apps, err := con.Apps.Apps(ctx, t.ID)
		if err != nil {
			return con.unavailable(c, "app list", err)
		}
		rows = append(rows, tenantRow{Tenant: t, Role: v.roleIn(t.ID), Apps: len(apps)})
	}
	f := con.frame(c, "tenants", "Tenants")
	f.Crumbs = nil // the tenants list is the top: nothing to lead back to
	page.frame, page.Tenants = f, rows
	if page.Form.Plan == "" {
		page.Form.Plan = tenants.DefaultPlan
	}
	if v.user.PlatformAdmin {
		plans, err := con.Manager.Plans.List(ctx)
		if err != nil {
			return con.unavailable(c, "plan list", err)
		}
		for _, p := range plans {
			page.Plans = append(page.Plans, p.Name)
		}
	}
	return con.render(c, status, "home", page)
}

// createTenant creates a tenant: platform admins only, like every change
// of tenants (security.md CON-4).
func (con *Console) createTenant(c *fiber.Ctx) error {
	if !viewerOf(c).user.PlatformAdmin {
		return con.fail(c, fiber.StatusForbidden, "Only platform admins create tenants.")
	}
	var page homePage
	page.Form.ID, page.Form.Name, page.Form.Plan = strings.TrimSpace(field(c, "id")), strings.TrimSpace(field(c, "name")), field(c, "plan")
	t, err := con.Manager.CreateTenant(c.UserContext(), con.actor(c), page.Form.ID, page.Form.Name, page.Form.Plan)
	if err != nil && !errors.Is(err, api.ErrNotAudited) {
		status, msg := con.problem(err)
		page.CreateError = msg
		return con.showHome(c, status, page)
	}
	return c.Redirect("/console/tenants/"+t.ID, fiber.StatusSeeOther)
}
