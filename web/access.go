package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/services/api"
	"github.com/heraldrt/herald/services/audit"
	"github.com/heraldrt/herald/tenants"
)

// scope says where a console route finds the tenant it concerns: what a
// user may see and do is decided per tenant.
type scope int

const (
	// scopeTenant is the :tenant path parameter.
	scopeTenant scope = iota
	// scopeApp is the tenant that owns the :app path parameter.
	scopeApp
	// scopeChain is the audit chain named by the tenant query or form
	// field: a tenant's, or the platform chain for platform admins.
	scopeChain
)

// consoleRoute is one signed-in page or action of the console. Routes
// registers the table and authorize checks every route's permission before
// its handler runs, so no handler can forget the check; the tests walk the
// same table for every role.
type consoleRoute struct {
	method string
	path   string // under /console
	scope  scope
	// perm is what the route needs in its tenant. A user who may not even
	// view the tenant gets 404, as if it did not exist; one whose role
	// lacks perm gets 403.
	perm   authz.Permission
	handle func(*Console, *fiber.Ctx) error
}

var consoleRoutes = []consoleRoute{
	{fiber.MethodGet, "/tenants/:tenant", scopeTenant, authz.PermView, (*Console).tenantPage},
	{fiber.MethodGet, "/tenants/:tenant/usage", scopeTenant, authz.PermView, (*Console).usagePage},
	{fiber.MethodPost, "/tenants/:tenant/apps", scopeTenant, authz.PermManageApps, (*Console).createApp},
	{fiber.MethodPost, "/tenants/:tenant/suspend", scopeTenant, authz.PermManageTenants, (*Console).suspendTenant},
	{fiber.MethodPost, "/tenants/:tenant/activate", scopeTenant, authz.PermManageTenants, (*Console).activateTenant},
	{fiber.MethodGet, "/tenants/:tenant/members", scopeTenant, authz.PermView, (*Console).membersPage},
	{fiber.MethodPost, "/tenants/:tenant/members/invite", scopeTenant, authz.PermManageMembers, (*Console).inviteMember},
	{fiber.MethodPost, "/tenants/:tenant/members/:user/role", scopeTenant, authz.PermManageMembers, (*Console).setMemberRole},
	{fiber.MethodPost, "/tenants/:tenant/members/:user/remove", scopeTenant, authz.PermManageMembers, (*Console).removeMember},
	{fiber.MethodGet, "/apps/:app", scopeApp, authz.PermView, (*Console).appPage},
	{fiber.MethodPost, "/apps/:app/settings", scopeApp, authz.PermManageApps, (*Console).saveSettings},
	{fiber.MethodPost, "/apps/:app/disable", scopeApp, authz.PermManageApps, (*Console).disableApp},
	{fiber.MethodPost, "/apps/:app/enable", scopeApp, authz.PermManageApps, (*Console).enableApp},
	{fiber.MethodPost, "/apps/:app/keys", scopeApp, authz.PermManageKeys, (*Console).createKey},
	{fiber.MethodPost, "/apps/:app/keys/:key/revoke", scopeApp, authz.PermManageKeys, (*Console).revokeKey},
	{fiber.MethodGet, "/apps/:app/policy", scopeApp, authz.PermView, (*Console).policyPage},
	{fiber.MethodPost, "/apps/:app/policy", scopeApp, authz.PermManagePolicies, (*Console).savePolicy},
	{fiber.MethodPost, "/apps/:app/policy/check", scopeApp, authz.PermView, (*Console).checkPolicy},
	{fiber.MethodGet, "/apps/:app/broadcast", scopeApp, authz.PermBroadcast, (*Console).broadcastPage},
	{fiber.MethodPost, "/apps/:app/broadcast", scopeApp, authz.PermBroadcast, (*Console).broadcast},
	{fiber.MethodGet, "/apps/:app/live", scopeApp, authz.PermView, (*Console).livePage},
	{fiber.MethodGet, "/apps/:app/live.json", scopeApp, authz.PermView, (*Console).liveData},
	{fiber.MethodGet, "/apps/:app/debug", scopeApp, authz.PermDebug, (*Console).debugPage},
	{fiber.MethodPost, "/apps/:app/debug/token", scopeApp, authz.PermDebug, (*Console).debugToken},
	{fiber.MethodGet, "/audit", scopeChain, authz.PermView, (*Console).auditPage},
	{fiber.MethodGet, "/audit/export", scopeChain, authz.PermView, (*Console).exportAudit},
	{fiber.MethodPost, "/audit/verify", scopeChain, authz.PermView, (*Console).verifyAudit},
}

// Locals set by authorize for the handlers.
const (
	localTenant = "herald.console.tenant" // *tenants.Tenant; absent for the platform chain
	localApp    = "herald.console.app"    // *tenants.App of scopeApp routes
	localChain  = "herald.console.chain"  // the audit chain of scopeChain routes
)

// authorize finds the route's tenant and lets the request through only if
// the user's role there has the route's permission. Unknown tenants and
// apps and those of other tenants get the same 404, so that guessing ids
// tells nothing.
func (con *Console) authorize(rt consoleRoute) fiber.Handler {
	return func(c *fiber.Ctx) error {
		v := viewerOf(c)
		ctx := c.UserContext()
		var tenantID string
		switch rt.scope {
		case scopeTenant:
			tenantID = param(c, "tenant")
		case scopeApp:
			app, err := con.Apps.AppByID(ctx, param(c, "app"))
			if errors.Is(err, tenants.ErrNotFound) {
				return con.notFound(c)
			}
			if err != nil {
				return con.unavailable(c, "app lookup", err)
			}
			if !con.RBAC.Allowed(v.user.PlatformAdmin, v.memberships, app.TenantID, authz.PermView) {
				return con.notFound(c)
			}
			c.Locals(localApp, app)
			tenantID = app.TenantID
		case scopeChain:
			tenantID = field(c, "tenant")
			if tenantID == audit.PlatformChain {
				// No tenant role reaches the platform chain: tenant ids
				// cannot be "platform", and only admins see it.
				if !v.user.PlatformAdmin {
					return con.notFound(c)
				}
				c.Locals(localChain, tenantID)
				return c.Next()
			}
		}
		if !con.RBAC.Allowed(v.user.PlatformAdmin, v.memberships, tenantID, authz.PermView) {
			return con.notFound(c)
		}
		t, err := con.Apps.Tenant(ctx, tenantID)
		if errors.Is(err, tenants.ErrNotFound) {
			return con.notFound(c)
		}
		if err != nil {
			return con.unavailable(c, "tenant lookup", err)
		}
		c.Locals(localTenant, t)
		c.Locals(localChain, t.ID)
		if !con.RBAC.Allowed(v.user.PlatformAdmin, v.memberships, t.ID, rt.perm) {
			return con.fail(c, fiber.StatusForbidden, fmt.Sprintf("Your role in %s (%s) does not allow %s.", t.Name, v.roleIn(t.ID), permText(rt.perm)))
		}
		return c.Next()
	}
}

// permText names what a permission allows, for the 403 page.
func permText(p authz.Permission) string {
	switch p {
	case authz.PermBroadcast:
		return "sending operator broadcasts; ask an operator or an owner"
	case authz.PermManageApps:
		return "creating, changing or disabling apps; ask an owner"
	case authz.PermManageKeys:
		return "creating or revoking keys; ask an owner"
	case authz.PermManagePolicies:
		return "changing channel policies; ask an owner"
	case authz.PermManageTenants:
		return "suspending or activating tenants; only platform admins may"
	}
	return "this action"
}

func viewerOf(c *fiber.Ctx) *viewer { return c.Locals(localViewer).(*viewer) }

func tenantOf(c *fiber.Ctx) *tenants.Tenant { return c.Locals(localTenant).(*tenants.Tenant) }

func appOf(c *fiber.Ctx) *tenants.App { return c.Locals(localApp).(*tenants.App) }

// roleIn names the user's role in a tenant, for the pages.
func (v *viewer) roleIn(tenantID string) string {
	for _, m := range v.memberships {
		if m.TenantID == tenantID {
			return string(m.Role)
		}
	}
	if v.user.PlatformAdmin {
		return "platform admin"
	}
	return "none"
}

// actor is the signed-in user as the Manager records them.
func (con *Console) actor(c *fiber.Ctx) api.Actor {
	return api.Actor{Name: "user:" + viewerOf(c).user.Email, IP: con.clientIP(c).String()}
}

// param and field copy a path parameter or a form or query field: fiber's
// strings point into the request buffer, which is reused after the
// request, and the memory stores keep what they are given.
func param(c *fiber.Ctx, name string) string { return strings.Clone(c.Params(name)) }

func field(c *fiber.Ctx, name string) string { return strings.Clone(c.FormValue(name)) }

// crumb is one step of the breadcrumb; the current page has no Href.
type crumb struct {
	Label string
	Href  string
}

func tenantCrumb(t *tenants.Tenant) crumb {
	return crumb{Label: t.Name, Href: "/console/tenants/" + t.ID}
}

func appCrumb(app *tenants.App) crumb {
	return crumb{Label: app.Name, Href: "/console/apps/" + app.ID}
}

// perms are the permissions the pages show or hide forms by. The routes
// check them again: hiding a form is a courtesy, not the control.
type perms struct {
	ManageApps, ManageKeys, ManagePolicies, Broadcast, Debug, ManageTenants bool
}

// frame is what the layout needs of every signed-in page.
type frame struct {
	Title  string
	User   *tenants.User
	CSRF   string
	Crumbs []crumb
	// Nav marks the current top-level section: "tenants", "apps" or
	// "audit".
	Nav string
	// Tab marks the current tab of an app's pages: "overview", "policy"
	// or "broadcast".
	Tab string
	// Tenant is the tenant the page is about, for the tenant's links in
	// the menu, with the user's Role and permissions there.
	Tenant *tenants.Tenant
	Role   string
	Can    perms
	// Notice confirms a change that redirected here.
	Notice string
}

// frame builds the frame of a page titled title, in the tenant authorize
// found if any. The breadcrumb starts at the tenants list and ends with
// the page itself, under its title; a page may then make its title more
// specific for the browser's tab.
func (con *Console) frame(c *fiber.Ctx, nav, title string, crumbs ...crumb) frame {
	v := viewerOf(c)
	f := frame{Title: title, User: v.user, CSRF: v.session.CSRF, Nav: nav,
		Crumbs: append([]crumb{{Label: "Tenants", Href: "/console/"}}, crumbs...)}
	f.Crumbs = append(f.Crumbs, crumb{Label: title})
	if t, ok := c.Locals(localTenant).(*tenants.Tenant); ok {
		allowed := func(p authz.Permission) bool {
			return con.RBAC.Allowed(v.user.PlatformAdmin, v.memberships, t.ID, p)
		}
		f.Tenant, f.Role = t, v.roleIn(t.ID)
		f.Can = perms{ManageApps: allowed(authz.PermManageApps), ManageKeys: allowed(authz.PermManageKeys),
			ManagePolicies: allowed(authz.PermManagePolicies), Broadcast: allowed(authz.PermBroadcast), Debug: allowed(authz.PermDebug),
			ManageTenants: allowed(authz.PermManageTenants)}
	}
	return f
}

// appFrame is the frame of one of the app's tabbed pages: titled with the
// page and the app's name, under the tenant and the app in the breadcrumb.
func (con *Console) appFrame(c *fiber.Ctx, title, tab string) frame {
	app := appOf(c)
	f := con.frame(c, "apps", title, tenantCrumb(tenantOf(c)), appCrumb(app))
	f.Tab = tab
	f.Title += " · " + app.Name
	return f
}

// errorPage shows why a request was refused or failed.
type errorPage struct {
	frame
	Message string
}

// fail renders an error page with msg. The page itself adds nothing of the
// tenant or app the request was about (no menu links, no breadcrumb), so a
// 404 looks the same whether or not the object exists.
func (con *Console) fail(c *fiber.Ctx, status int, msg string) error {
	v := viewerOf(c)
	title := http.StatusText(status)
	return con.render(c, status, "error", errorPage{
		frame:   frame{Title: title, User: v.user, CSRF: v.session.CSRF, Crumbs: []crumb{{Label: "Tenants", Href: "/console/"}, {Label: title}}},
		Message: msg,
	})
}

func (con *Console) notFound(c *fiber.Ctx) error {
	return con.fail(c, fiber.StatusNotFound, "There is no such tenant or app, or you do not have access to it.")
}

func (con *Console) unavailable(c *fiber.Ctx, what string, err error) error {
	con.Log.Error("console "+what+" failed", "err", err)
	return con.fail(c, fiber.StatusServiceUnavailable, "The console is temporarily unavailable. Try again in a moment.")
}

// problem turns an error of the Manager or a store into a status and a
// message to show next to the form. Their messages name the field or the
// object and are safe to show; anything else is logged and shown as a
// temporary failure.
func (con *Console) problem(err error) (int, string) {
	var policyErr *authz.PolicyError
	var limitErr *authz.LimitError
	switch {
	case errors.As(err, &policyErr):
		return fiber.StatusBadRequest, "Invalid policy: " + policyErr.Error()
	case errors.As(err, &limitErr):
		// The verdict's reset is on the limiter's clock, the wall clock.
		wait := max(time.Second, limitErr.Verdict.RetryAfter(time.Now()).Round(time.Second))
		return fiber.StatusTooManyRequests, fmt.Sprintf("Refused: %s. Try again in %s.", limitErr.Message, wait)
	case errors.Is(err, tenants.ErrNotFound):
		return fiber.StatusNotFound, sentence("Not found", err, tenants.ErrNotFound)
	case errors.Is(err, tenants.ErrConflict):
		return fiber.StatusConflict, sentence("Conflict", err, tenants.ErrConflict)
	case errors.Is(err, tenants.ErrInvalid):
		return fiber.StatusBadRequest, sentence("Refused", err, tenants.ErrInvalid)
	case errors.Is(err, billing.ErrUnknownPlan):
		return fiber.StatusBadRequest, sentence("", err, nil)
	case errors.Is(err, api.ErrNotAudited):
		return fiber.StatusInternalServerError, sentence("", err, nil)
	}
	con.Log.Error("console change failed", "err", err)
	return fiber.StatusServiceUnavailable, "The control plane is temporarily unavailable. Try again in a moment."
}

// sentence makes an error's message readable on a page: the label, then
// the message without the sentinel's own text ("invalid: ..."), ending
// with a full stop. Without a label the message is capitalised instead;
// with one it is left as is, as it often starts with a field's name.
func sentence(label string, err, sentinel error) string {
	msg := err.Error()
	if sentinel != nil {
		msg = strings.TrimPrefix(strings.TrimPrefix(msg, sentinel.Error()), ": ")
	}
	switch {
	case msg == "":
		msg = label
	case label != "":
		msg = label + ": " + msg
	default:
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}
