package web

import (
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/services/api"
	"github.com/heraldrt/herald/tenants"
)

// tenantPage is a tenant with its apps.
type tenantPage struct {
	frame
	Apps []*tenants.App
	// AppName and CreateError are the create-app form's entry and what
	// was wrong with it.
	AppName     string
	CreateError string
}

// notices are the confirmations a change redirects with (?done=...). Only
// these fixed texts are shown, so a crafted link cannot put words on the
// page.
var notices = map[string]string{
	"suspended": "Tenant suspended: its apps refuse connections and their open connections are being closed.",
	"activated": "Tenant activated: its apps serve again.",
	"settings":  "Settings saved. Every node applies them within moments.",
	"disabled":  "App disabled: its connections are being closed on every node.",
	"enabled":   "App enabled.",
	"revoked":   "Key revoked. Connections that used it are asked to reconnect, and then fail.",
	"policy":    "Policy saved as a new version. Every node re-checks its subscriptions against it.",
}

func notice(c *fiber.Ctx) string { return notices[c.Query("done")] }

func (con *Console) tenantPage(c *fiber.Ctx) error {
	return con.showTenant(c, fiber.StatusOK, "", "")
}

// showTenant renders the tenant's page, with the create-app form's entry
// and error after a failed attempt.
func (con *Console) showTenant(c *fiber.Ctx, status int, appName, createError string) error {
	t := tenantOf(c)
	apps, err := con.Apps.Apps(c.UserContext(), t.ID)
	if err != nil {
		return con.unavailable(c, "app list", err)
	}
	f := con.frame(c, "apps", t.Name)
	f.Notice = notice(c)
	return con.render(c, status, "tenant", tenantPage{frame: f, Apps: apps, AppName: appName, CreateError: createError})
}

// createApp creates an app and shows its page with the first key's
// secret: the only time it is shown, so the page is the POST's answer
// rather than a redirect that would lose it.
func (con *Console) createApp(c *fiber.Ctx) error {
	name := strings.TrimSpace(field(c, "name"))
	app, key, err := con.Manager.CreateApp(c.UserContext(), con.actor(c), api.AppChange{TenantID: tenantOf(c).ID, Name: &name})
	if err != nil && !errors.Is(err, api.ErrNotAudited) {
		status, msg := con.problem(err)
		return con.showTenant(c, status, name, msg)
	}
	c.Locals(localApp, app)
	page, err2 := con.appData(c, "App created.")
	if err2 != nil {
		return con.unavailable(c, "app page", err2)
	}
	page.NewKey = &newKey{Key: key.Key, Secret: key.Secret.Reveal()}
	if err != nil {
		// The app exists, so its secret must still be shown.
		_, page.KeyError = con.problem(err)
	}
	return con.render(c, fiber.StatusCreated, "app", page)
}

func (con *Console) suspendTenant(c *fiber.Ctx) error {
	return con.setTenantStatus(c, tenants.TenantSuspended, "suspended")
}

func (con *Console) activateTenant(c *fiber.Ctx) error {
	return con.setTenantStatus(c, tenants.TenantActive, "activated")
}

func (con *Console) setTenantStatus(c *fiber.Ctx, status, done string) error {
	t := tenantOf(c)
	if _, err := con.Manager.SetTenantStatus(c.UserContext(), con.actor(c), t.ID, status); err != nil {
		code, msg := con.problem(err)
		return con.fail(c, code, msg)
	}
	return c.Redirect("/console/tenants/"+t.ID+"?done="+done, fiber.StatusSeeOther)
}
