package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/services/audit"
	"github.com/heraldrt/herald/tenants"
)

// ManageRoutes registers the management API under /v1: tenants, apps and
// keys. Every route needs the operator token (Authorization: Bearer ...);
// without a configured token the API is off.
func (s *Server) ManageRoutes(r fiber.Router) {
	v1 := r.Group("/v1", s.operator)
	v1.Get("/tenants", s.listTenants)
	v1.Post("/tenants", s.createTenant)
	v1.Get("/tenants/:tenant_id", s.getTenant)
	v1.Post("/tenants/:tenant_id/suspend", s.setTenantStatus(tenants.TenantSuspended))
	v1.Post("/tenants/:tenant_id/activate", s.setTenantStatus(tenants.TenantActive))
	v1.Get("/apps", s.listApps)
	v1.Post("/apps", s.createApp)
	v1.Get("/apps/:app_id", s.getApp)
	v1.Patch("/apps/:app_id", s.updateApp)
	v1.Post("/apps/:app_id/disable", s.disableApp)
	v1.Get("/apps/:app_id/keys", s.listKeys)
	v1.Post("/apps/:app_id/keys", s.createKey)
	v1.Delete("/apps/:app_id/keys/:key", s.revokeKey)
	s.policyRoutes(v1)
}

// operator checks the bearer token in constant time (both sides hashed, so
// the comparison does not leak the token's length either).
func (s *Server) operator(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	if s.AdminToken == "" {
		return &Error{fiber.StatusForbidden, "the management API is off: set HERALD_ADMIN_TOKEN"}
	}
	got, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	want := sha256.Sum256([]byte(s.AdminToken))
	have := sha256.Sum256([]byte(got))
	if !ok || subtle.ConstantTimeCompare(want[:], have[:]) != 1 {
		return &Error{fiber.StatusUnauthorized, "missing or wrong operator token (Authorization: Bearer <HERALD_ADMIN_TOKEN>)"}
	}
	return c.Next()
}

// record writes the audit entry of a change the management API made. The
// actor is the operator token's holder, from the authentication, never
// from the request. The change is already stored, so a failure to record
// it is answered as a server error naming that, and logged, rather than
// reported as success.
func (s *Server) record(c *fiber.Ctx, e audit.Entry) error {
	e.Actor = operatorActor
	e.ActorIP = s.clientIP(c).String()
	if e.Chain == "" {
		e.Chain = e.TenantID
	}
	if _, err := s.Audit.Append(c.UserContext(), e); err != nil {
		s.log.Error("audit append failed", "action", e.Action, "tenant", e.TenantID, "app", e.AppID, "err", err)
		return &Error{fiber.StatusInternalServerError, "the change was applied but could not be recorded in the audit log"}
	}
	return nil
}

// storeError maps store errors to statuses; their messages name the field
// or the object and are safe to show.
func (s *Server) storeError(err error) error {
	switch {
	case errors.Is(err, tenants.ErrNotFound):
		return &Error{fiber.StatusNotFound, err.Error()}
	case errors.Is(err, tenants.ErrConflict):
		return &Error{fiber.StatusConflict, err.Error()}
	case errors.Is(err, tenants.ErrInvalid), errors.Is(err, billing.ErrUnknownPlan):
		return badRequest(err.Error())
	}
	s.log.Error("store call failed", "err", err)
	return &Error{fiber.StatusServiceUnavailable, "the control plane is temporarily unavailable, retry"}
}

// strictJSON decodes a request body, refusing unknown fields so a typo is an
// error rather than a silently ignored setting.
func strictJSON(c *fiber.Ctx, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(c.Body())))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body: " + err.Error())
	}
	return nil
}

// announce tells every node that the app changed. The change is already
// stored, so a failure is reported but does not undo it; caches expire on
// their own.
func (s *Server) announce(c *fiber.Ctx, appID string) {
	if err := s.gateway.InvalidateApp(c.UserContext(), appID); err != nil {
		s.log.Error("app change announcement failed", "app", appID, "err", err)
	}
}

func (s *Server) listTenants(c *fiber.Ctx) error {
	list, err := s.apps.Tenants(c.UserContext())
	if err != nil {
		return s.storeError(err)
	}
	return c.JSON(fiber.Map{"tenants": list})
}

func (s *Server) createTenant(c *fiber.Ctx) error {
	var body struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Plan string `json:"plan"`
	}
	if err := strictJSON(c, &body); err != nil {
		return err
	}
	if body.Name == "" || len(body.Name) > 200 {
		return badRequest("name is required (at most 200 characters)")
	}
	if body.Plan == "" {
		body.Plan = "free"
	}
	if _, err := s.Plans.Plan(c.UserContext(), body.Plan); err != nil {
		return s.storeError(err)
	}
	if body.ID == "" {
		body.ID = tenants.NewTenantID()
	}
	t := &tenants.Tenant{ID: body.ID, Name: body.Name, Plan: body.Plan, Status: tenants.TenantActive}
	if err := s.apps.CreateTenant(c.UserContext(), t); err != nil {
		return s.storeError(err)
	}
	created, err := s.apps.Tenant(c.UserContext(), t.ID)
	if err != nil {
		return s.storeError(err)
	}
	if err := s.record(c, audit.Entry{Chain: audit.PlatformChain, TenantID: t.ID, Action: "tenant.create", Target: t.ID,
		Details: map[string]string{"plan": t.Plan}}); err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(created)
}

func (s *Server) getTenant(c *fiber.Ctx) error {
	t, err := s.apps.Tenant(c.UserContext(), pathParam(c, "tenant_id"))
	if err != nil {
		return s.storeError(err)
	}
	apps, err := s.apps.Apps(c.UserContext(), t.ID)
	if err != nil {
		return s.storeError(err)
	}
	return c.JSON(fiber.Map{"tenant": t, "apps": apps})
}

func (s *Server) setTenantStatus(status string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := pathParam(c, "tenant_id")
		if err := s.apps.SetTenantStatus(c.UserContext(), id, status); err != nil {
			return s.storeError(err)
		}
		apps, err := s.apps.Apps(c.UserContext(), id)
		if err != nil {
			return s.storeError(err)
		}
		for _, a := range apps {
			s.announce(c, a.ID)
		}
		t, err := s.apps.Tenant(c.UserContext(), id)
		if err != nil {
			return s.storeError(err)
		}
		action := "tenant.activate"
		if status == tenants.TenantSuspended {
			action = "tenant.suspend"
		}
		if err := s.record(c, audit.Entry{Chain: audit.PlatformChain, TenantID: id, Action: action, Target: id}); err != nil {
			return err
		}
		return c.JSON(t)
	}
}

func (s *Server) listApps(c *fiber.Ctx) error {
	apps, err := s.apps.Apps(c.UserContext(), c.Query("tenant"))
	if err != nil {
		return s.storeError(err)
	}
	return c.JSON(fiber.Map{"apps": apps})
}

// appBody is the JSON of an app in create and update requests: the shape of
// HERALD_APPS entries without credentials.
type appBody struct {
	ID       string            `json:"id"`
	TenantID string            `json:"tenant_id"`
	Name     *string           `json:"name"`
	Enabled  *bool             `json:"enabled"`
	Settings *tenants.Settings `json:"settings"`
}

func (s *Server) createApp(c *fiber.Ctx) error {
	var body appBody
	if err := strictJSON(c, &body); err != nil {
		return err
	}
	if body.TenantID == "" {
		return badRequest("tenant_id is required")
	}
	tenant, err := s.apps.Tenant(c.UserContext(), body.TenantID)
	if err != nil {
		return s.storeError(err)
	}
	plan, err := s.planOf(c, tenant.Plan)
	if err != nil {
		return err
	}
	app := tenants.NewApp("")
	app.TenantID = body.TenantID
	if body.ID != "" {
		app.ID = body.ID
	}
	if body.Name != nil {
		app.Name = *body.Name
	}
	if app.Name == "" {
		return badRequest("name is required")
	}
	if body.Enabled != nil {
		app.Enabled = *body.Enabled
	}
	if body.Settings != nil {
		app.Settings = *body.Settings
	}
	if err := withinPlan(plan, &app.Settings); err != nil {
		return s.storeError(err)
	}
	if _, err := s.apps.AppByID(c.UserContext(), app.ID); err == nil {
		return &Error{fiber.StatusConflict, "app id " + app.ID + " is taken"}
	}
	if err := s.apps.PutApp(c.UserContext(), app); err != nil {
		return s.storeError(err)
	}
	stored, err := s.apps.AppByID(c.UserContext(), app.ID)
	if err != nil {
		return s.storeError(err)
	}
	key := app.PrimaryKey()
	if err := s.record(c, audit.Entry{TenantID: stored.TenantID, AppID: stored.ID, Action: "app.create", Target: stored.ID,
		Details: map[string]string{"key": key.Key}}); err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"app": stored, "key": secretJSON(key)})
}

// withinPlan fills the settings' defaults and refuses limits above the
// plan's ceilings, naming the limit.
func withinPlan(plan billing.Plan, settings *tenants.Settings) error {
	if err := settings.Normalize(); err != nil {
		return fmt.Errorf("%w: %v", tenants.ErrInvalid, err)
	}
	return plan.Check(settings.Limits)
}

// secretJSON shows a key's secret: only ever in the answer that created it.
func secretJSON(k tenants.Key) fiber.Map {
	return fiber.Map{"key": k.Key, "secret": k.Secret.Reveal()}
}

func (s *Server) getApp(c *fiber.Ctx) error {
	app, err := s.apps.AppByID(c.UserContext(), pathParam(c, "app_id"))
	if err != nil {
		return s.storeError(err)
	}
	keys, err := s.apps.Keys(c.UserContext(), app.ID)
	if err != nil {
		return s.storeError(err)
	}
	return c.JSON(fiber.Map{"app": app, "keys": keys})
}

func (s *Server) updateApp(c *fiber.Ctx) error {
	var body appBody
	if err := strictJSON(c, &body); err != nil {
		return err
	}
	if body.ID != "" || body.TenantID != "" {
		return badRequest("id and tenant_id cannot be changed")
	}
	current, err := s.existingApp(c)
	if err != nil {
		return err
	}
	plan, err := s.planOf(c, current.Plan)
	if err != nil {
		return err
	}
	app, err := s.apps.UpdateApp(c.UserContext(), current.ID, func(a *tenants.App) error {
		if body.Name != nil {
			a.Name = *body.Name
		}
		if body.Enabled != nil {
			a.Enabled = *body.Enabled
		}
		if body.Settings != nil {
			a.Settings = *body.Settings
			return withinPlan(plan, &a.Settings)
		}
		return nil
	})
	if err != nil {
		return s.storeError(err)
	}
	s.announce(c, app.ID)
	if err := s.record(c, audit.Entry{TenantID: app.TenantID, AppID: app.ID, Action: "app.update", Target: app.ID,
		Details: changedFields(body)}); err != nil {
		return err
	}
	return c.JSON(app)
}

// changedFields names the fields an update asked to change.
func changedFields(body appBody) map[string]string {
	var fields []string
	if body.Name != nil {
		fields = append(fields, "name")
	}
	if body.Enabled != nil {
		fields = append(fields, "enabled")
	}
	if body.Settings != nil {
		fields = append(fields, "settings")
	}
	return map[string]string{"fields": strings.Join(fields, ",")}
}

func (s *Server) disableApp(c *fiber.Ctx) error {
	app, err := s.apps.UpdateApp(c.UserContext(), pathParam(c, "app_id"), func(a *tenants.App) error {
		a.Enabled = false
		return nil
	})
	if err != nil {
		return s.storeError(err)
	}
	s.announce(c, app.ID)
	if err := s.record(c, audit.Entry{TenantID: app.TenantID, AppID: app.ID, Action: "app.disable", Target: app.ID}); err != nil {
		return err
	}
	return c.JSON(app)
}

func (s *Server) listKeys(c *fiber.Ctx) error {
	keys, err := s.apps.Keys(c.UserContext(), pathParam(c, "app_id"))
	if err != nil {
		return s.storeError(err)
	}
	return c.JSON(fiber.Map{"keys": keys})
}

// createKey adds a key: the first half of a rotation (move clients to the
// new key, then revoke the old one).
func (s *Server) createKey(c *fiber.Ctx) error {
	app, err := s.existingApp(c)
	if err != nil {
		return err
	}
	k, err := s.apps.CreateKey(c.UserContext(), app.ID)
	if err != nil {
		return s.storeError(err)
	}
	s.announce(c, app.ID)
	if err := s.record(c, audit.Entry{TenantID: app.TenantID, AppID: app.ID, Action: "key.create", Target: k.Key}); err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(secretJSON(k))
}

func (s *Server) revokeKey(c *fiber.Ctx) error {
	app, err := s.existingApp(c)
	if err != nil {
		return err
	}
	key := pathParam(c, "key")
	if err := s.apps.RevokeKey(c.UserContext(), app.ID, key); err != nil {
		return s.storeError(err)
	}
	s.announce(c, app.ID)
	if err := s.record(c, audit.Entry{TenantID: app.TenantID, AppID: app.ID, Action: "key.revoke", Target: key}); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"revoked": key})
}
