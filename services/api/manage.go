package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/tenants"
)

// ManageRoutes registers the management API under /v1: tenants, apps,
// keys, policies and limits. Every route needs the operator token
// (Authorization: Bearer ...); without a configured token the API is off.
// The changes themselves are the Manager's.
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
	v1.Get("/apps/:app_id/policy", s.getPolicy)
	v1.Put("/apps/:app_id/policy", s.putPolicy)
	v1.Get("/apps/:app_id/policy/versions", s.policyVersions)
	v1.Post("/apps/:app_id/policy/check", s.checkPolicy)
	v1.Get("/apps/:app_id/limits", s.getLimits)
	v1.Get("/plans", s.listPlans)
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

// actor is the operator token's holder, from the authentication.
func (s *Server) actor(c *fiber.Ctx) Actor {
	return Actor{Name: "operator", IP: s.clientIP(c).String()}
}

// storeError maps the Manager's and the stores' errors to statuses; their
// messages name the field or the object and are safe to show.
func (s *Server) storeError(err error) error {
	var pe *authz.PolicyError
	switch {
	case errors.As(err, &pe):
		return badRequest("invalid policy: " + pe.Error())
	case errors.Is(err, tenants.ErrNotFound):
		return &Error{fiber.StatusNotFound, err.Error()}
	case errors.Is(err, tenants.ErrConflict):
		return &Error{fiber.StatusConflict, err.Error()}
	case errors.Is(err, tenants.ErrInvalid), errors.Is(err, billing.ErrUnknownPlan):
		return badRequest(err.Error())
	case errors.Is(err, ErrNotAudited):
		return &Error{fiber.StatusInternalServerError, err.Error()}
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
	t, err := s.Manager.CreateTenant(c.UserContext(), s.actor(c), body.ID, body.Name, body.Plan)
	if err != nil {
		return s.storeError(err)
	}
	return c.Status(fiber.StatusCreated).JSON(t)
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
		t, err := s.Manager.SetTenantStatus(c.UserContext(), s.actor(c), pathParam(c, "tenant_id"), status)
		if err != nil {
			return s.storeError(err)
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

func (s *Server) createApp(c *fiber.Ctx) error {
	var body AppChange
	if err := strictJSON(c, &body); err != nil {
		return err
	}
	app, key, err := s.Manager.CreateApp(c.UserContext(), s.actor(c), body)
	if err != nil {
		return s.storeError(err)
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"app": app, "key": secretJSON(key)})
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
	var body AppChange
	if err := strictJSON(c, &body); err != nil {
		return err
	}
	app, err := s.Manager.UpdateApp(c.UserContext(), s.actor(c), pathParam(c, "app_id"), body)
	if err != nil {
		return s.storeError(err)
	}
	return c.JSON(app)
}

func (s *Server) disableApp(c *fiber.Ctx) error {
	app, err := s.Manager.DisableApp(c.UserContext(), s.actor(c), pathParam(c, "app_id"))
	if err != nil {
		return s.storeError(err)
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
	k, err := s.Manager.CreateKey(c.UserContext(), s.actor(c), pathParam(c, "app_id"))
	if err != nil {
		return s.storeError(err)
	}
	return c.Status(fiber.StatusCreated).JSON(secretJSON(k))
}

func (s *Server) revokeKey(c *fiber.Ctx) error {
	key := pathParam(c, "key")
	if err := s.Manager.RevokeKey(c.UserContext(), s.actor(c), pathParam(c, "app_id"), key); err != nil {
		return s.storeError(err)
	}
	return c.JSON(fiber.Map{"revoked": key})
}
