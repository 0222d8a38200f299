package web

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/services/api"
	"github.com/heraldrt/herald/tenants"
)

// appPage is an app's overview: its settings and keys.
type appPage struct {
	frame
	App  *tenants.App
	Plan billing.Plan
	// Name, Limits and the features are the settings form: the stored
	// values, or what was entered when saving failed.
	Name          string
	Limits        []limitRow
	ClientEvents  bool
	PolicyPrivate bool
	SettingsError string
	Keys          []keyRow
	// NewKey is a key just created, with its secret: shown once.
	NewKey   *newKey
	KeyError string
	// StatusError is why disabling or enabling the app failed.
	StatusError string
}

// limitRow is one limit of the settings form.
type limitRow struct {
	Name  string
	Value string
	Max   int
	// Zero says what 0 (or an empty field) means for this limit.
	Zero string
	// Ceiling is the plan's ceiling and Effective what the app gets under
	// its plan with the stored settings.
	Ceiling   string
	Effective string
}

type keyRow struct {
	Key     string
	Last4   string
	Created string
	Revoked string
}

type newKey struct {
	Key, Secret string
}

// appData builds the app page of the app authorize found, with the stored
// settings in the form. Its error is a store's, for con.unavailable.
func (con *Console) appData(c *fiber.Ctx, notice string) (appPage, error) {
	app := appOf(c)
	ctx := c.UserContext()
	plan, err := con.Manager.Plans.Plan(ctx, app.Plan)
	if err != nil {
		return appPage{}, fmt.Errorf("plan lookup: %w", err)
	}
	keys, err := con.Apps.Keys(ctx, app.ID)
	if err != nil {
		return appPage{}, fmt.Errorf("key list: %w", err)
	}
	f := con.frame(c, "apps", app.Name, tenantCrumb(tenantOf(c)))
	f.Notice = notice
	f.Tab = "overview"
	page := appPage{frame: f, App: app, Plan: plan, Name: app.Name,
		ClientEvents: app.Settings.Features.ClientEventsEnabled(), PolicyPrivate: app.Settings.Features.PolicyAuthorizedPrivate}
	effective := plan.Apply(app.Settings.Limits)
	for i := range tenants.LimitSpecs {
		spec := &tenants.LimitSpecs[i]
		row := limitRow{Name: spec.Name, Value: strconv.Itoa(*app.Settings.Limits.At(i)), Max: spec.Max,
			Ceiling: "none", Effective: "unlimited", Zero: fmt.Sprintf("the default, %d", spec.Default)}
		if spec.Default == 0 {
			row.Zero = "the plan's value"
		}
		if c := *plan.Limits.At(i); c > 0 {
			row.Ceiling = strconv.Itoa(c)
		}
		if e := *effective.At(i); e > 0 {
			row.Effective = strconv.Itoa(e)
		}
		page.Limits = append(page.Limits, row)
	}
	for _, k := range keys {
		row := keyRow{Key: k.Key, Last4: k.SecretLast4, Created: when(k.CreatedAt)}
		if k.RevokedAt != nil {
			row.Revoked = when(*k.RevokedAt)
		}
		page.Keys = append(page.Keys, row)
	}
	return page, nil
}

func (con *Console) appPage(c *fiber.Ctx) error {
	page, err := con.appData(c, notice(c))
	if err != nil {
		return con.unavailable(c, "app page", err)
	}
	return con.render(c, fiber.StatusOK, "app", page)
}

// saveSettings changes the app's name, limits and features. A refused
// change shows the page again with what was entered and why.
func (con *Console) saveSettings(c *fiber.Ctx) error {
	page, err := con.appData(c, "")
	if err != nil {
		return con.unavailable(c, "app page", err)
	}
	app := appOf(c)
	settings := app.Settings
	var notNumbers []string
	for i := range tenants.LimitSpecs {
		spec := &tenants.LimitSpecs[i]
		raw := strings.TrimSpace(field(c, "limit_"+spec.Name))
		page.Limits[i].Value = raw
		n := 0
		if raw != "" {
			if n, err = strconv.Atoi(raw); err != nil {
				notNumbers = append(notNumbers, spec.Name)
			}
		}
		*settings.Limits.At(i) = n
	}
	clientEvents := c.FormValue("client_events") == "1"
	settings.Features.ClientEvents = &clientEvents
	settings.Features.PolicyAuthorizedPrivate = c.FormValue("policy_authorized_private") == "1"
	page.Name = strings.TrimSpace(field(c, "name"))
	page.ClientEvents, page.PolicyPrivate = clientEvents, settings.Features.PolicyAuthorizedPrivate
	if len(notNumbers) > 0 {
		page.SettingsError = "Limits must be whole numbers: " + strings.Join(notNumbers, ", ") + "."
		return con.render(c, fiber.StatusBadRequest, "app", page)
	}
	if page.Name == "" {
		// The Manager accepts an empty name on update, but the console
		// lists apps by name: one without could not be told apart.
		page.SettingsError = "The name is required."
		return con.render(c, fiber.StatusBadRequest, "app", page)
	}
	if _, err := con.Manager.UpdateApp(c.UserContext(), con.actor(c), app.ID, api.AppChange{Name: &page.Name, Settings: &settings}); err != nil {
		status, msg := con.problem(err)
		page.SettingsError = msg
		return con.render(c, status, "app", page)
	}
	return c.Redirect("/console/apps/"+app.ID+"?done=settings", fiber.StatusSeeOther)
}

func (con *Console) disableApp(c *fiber.Ctx) error {
	_, err := con.Manager.DisableApp(c.UserContext(), con.actor(c), appOf(c).ID)
	return con.appStatusChanged(c, err, "disabled")
}

func (con *Console) enableApp(c *fiber.Ctx) error {
	enabled := true
	_, err := con.Manager.UpdateApp(c.UserContext(), con.actor(c), appOf(c).ID, api.AppChange{Enabled: &enabled})
	return con.appStatusChanged(c, err, "enabled")
}

// appStatusChanged answers a disable or enable: back to the app page, with
// the error next to the button if it failed.
func (con *Console) appStatusChanged(c *fiber.Ctx, err error, done string) error {
	if err == nil {
		return c.Redirect("/console/apps/"+appOf(c).ID+"?done="+done, fiber.StatusSeeOther)
	}
	return con.appProblem(c, err, func(p *appPage) *string { return &p.StatusError })
}

// appProblem shows the app page with err's message next to the form it
// concerns, which at picks.
func (con *Console) appProblem(c *fiber.Ctx, err error, at func(*appPage) *string) error {
	page, err2 := con.appData(c, "")
	if err2 != nil {
		return con.unavailable(c, "app page", err2)
	}
	status, msg := con.problem(err)
	*at(&page) = msg
	return con.render(c, status, "app", page)
}

// createKey adds a key and shows it with its secret in the POST's answer:
// the secret is shown this once, and a redirect would lose it.
func (con *Console) createKey(c *fiber.Ctx) error {
	k, err := con.Manager.CreateKey(c.UserContext(), con.actor(c), appOf(c).ID)
	if err != nil && !errors.Is(err, api.ErrNotAudited) {
		return con.appProblem(c, err, func(p *appPage) *string { return &p.KeyError })
	}
	page, err2 := con.appData(c, "Key created.")
	if err2 != nil {
		return con.unavailable(c, "app page", err2)
	}
	page.NewKey = &newKey{Key: k.Key, Secret: k.Secret.Reveal()}
	if err != nil {
		// The key exists, so its secret must still be shown.
		_, page.KeyError = con.problem(err)
	}
	return con.render(c, fiber.StatusCreated, "app", page)
}

// revokeKey revokes a key. The store refuses to revoke the last active
// key, and the page says so next to the keys.
func (con *Console) revokeKey(c *fiber.Ctx) error {
	app := appOf(c)
	err := con.Manager.RevokeKey(c.UserContext(), con.actor(c), app.ID, param(c, "key"))
	if err == nil {
		return c.Redirect("/console/apps/"+app.ID+"?done=revoked", fiber.StatusSeeOther)
	}
	return con.appProblem(c, err, func(p *appPage) *string { return &p.KeyError })
}
