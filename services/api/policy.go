package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/services/audit"
	"github.com/heraldrt/herald/tenants"
)

// operatorActor names whoever holds the operator token in policy history.
// The actor always comes from the authentication, never from the request
// body, so it cannot be forged (the console will name its users).
const operatorActor = "operator"

// policyRoutes registers the channel-policy and limits routes of the
// management API.
func (s *Server) policyRoutes(v1 fiber.Router) {
	v1.Get("/apps/:app_id/policy", s.getPolicy)
	v1.Put("/apps/:app_id/policy", s.putPolicy)
	v1.Get("/apps/:app_id/policy/versions", s.policyVersions)
	v1.Post("/apps/:app_id/policy/check", s.checkPolicy)
	v1.Get("/apps/:app_id/limits", s.getLimits)
	v1.Get("/plans", s.listPlans)
}

// policyJSON is a policy version with its parsed rules.
func policyJSON(v authz.PolicyVersion) fiber.Map {
	rules, _ := authz.ParsePolicy(v.Document) // stored documents were validated
	list := make([]fiber.Map, 0, len(rules))
	for _, r := range rules {
		list = append(list, ruleJSON(&r))
	}
	return fiber.Map{"app_id": v.AppID, "version": v.Version, "policy": v.Document, "author": v.Author,
		"created_at": v.CreatedAt, "rules": list}
}

func ruleJSON(r *authz.Rule) fiber.Map {
	if r == nil {
		return nil
	}
	return fiber.Map{"line": r.Line, "text": r.Text}
}

// existingApp returns the app named in the path, or the store's error.
func (s *Server) existingApp(c *fiber.Ctx) (*tenants.App, error) {
	app, err := s.apps.AppByID(c.UserContext(), pathParam(c, "app_id"))
	if err != nil {
		return nil, s.storeError(err)
	}
	return app, nil
}

func (s *Server) getPolicy(c *fiber.Ctx) error {
	app, err := s.existingApp(c)
	if err != nil {
		return err
	}
	v, err := s.Policies.Store().Current(c.UserContext(), app.ID)
	if err != nil {
		return s.storeError(err)
	}
	return c.JSON(policyJSON(v))
}

// putPolicy replaces the app's policy with a new version and tells every
// node, which re-check their open subscriptions against it.
func (s *Server) putPolicy(c *fiber.Ctx) error {
	var body struct {
		Policy *string `json:"policy"`
	}
	if err := strictJSON(c, &body); err != nil {
		return err
	}
	if body.Policy == nil {
		return badRequest(`policy is required: {"policy": "allow * * subscribe\n..."}`)
	}
	app, err := s.existingApp(c)
	if err != nil {
		return err
	}
	v, err := s.Policies.Store().Replace(c.UserContext(), app.ID, *body.Policy, operatorActor)
	if err != nil {
		return s.policyError(err)
	}
	s.log.Info("channel policy replaced", "app", app.ID, "version", v.Version, "author", v.Author)
	s.announce(c, app.ID)
	sum := sha256.Sum256([]byte(v.Document))
	if err := s.record(c, audit.Entry{TenantID: app.TenantID, AppID: app.ID, Action: "policy.replace",
		Target:  "version " + strconv.FormatInt(v.Version, 10),
		Details: map[string]string{"policy_sha256": hex.EncodeToString(sum[:])}}); err != nil {
		return err
	}
	return c.JSON(policyJSON(v))
}

// policyError answers an invalid document with 400 naming its line.
func (s *Server) policyError(err error) error {
	var pe *authz.PolicyError
	if errors.As(err, &pe) {
		return badRequest("invalid policy: " + pe.Error())
	}
	return s.storeError(err)
}

func (s *Server) policyVersions(c *fiber.Ctx) error {
	app, err := s.existingApp(c)
	if err != nil {
		return err
	}
	limit := 20
	if q := c.Query("limit"); q != "" {
		if limit, err = strconv.Atoi(q); err != nil || limit < 1 || limit > 1000 {
			return badRequest("limit must be a number from 1 to 1000")
		}
	}
	vs, err := s.Policies.Store().History(c.UserContext(), app.ID, limit)
	if err != nil {
		return s.storeError(err)
	}
	list := make([]fiber.Map, 0, len(vs))
	for _, v := range vs {
		list = append(list, fiber.Map{"version": v.Version, "author": v.Author, "created_at": v.CreatedAt, "policy": v.Document})
	}
	return c.JSON(fiber.Map{"versions": list})
}

// checkPolicy answers what the app's policy (or a draft given in the
// body) decides for a subject, a channel and an action, and which rule
// decided.
func (s *Server) checkPolicy(c *fiber.Ctx) error {
	var body struct {
		UserID  string   `json:"user_id"`
		Roles   []string `json:"roles"`
		Channel string   `json:"channel"`
		Action  string   `json:"action"`
		Policy  *string  `json:"policy"`
	}
	if err := strictJSON(c, &body); err != nil {
		return err
	}
	switch {
	case body.Channel == "":
		return badRequest("channel is required")
	case body.Action != authz.ActionSubscribe && body.Action != authz.ActionClientEvent:
		return badRequest(`action must be "subscribe" or "client-event"`)
	case len(body.Roles) > 32:
		return badRequest("roles lists more than 32 roles")
	}
	app, err := s.existingApp(c)
	if err != nil {
		return err
	}
	var policy *authz.Policy
	if body.Policy != nil {
		policy, err = authz.CompilePolicy(app.ID, *body.Policy, 0)
	} else {
		var v authz.PolicyVersion
		if v, err = s.Policies.Store().Current(c.UserContext(), app.ID); err != nil {
			return s.storeError(err)
		}
		policy, err = authz.CompilePolicy(app.ID, v.Document, v.Version)
	}
	if err != nil {
		return s.policyError(err)
	}
	d := policy.Check(authz.Subject{UserID: body.UserID, Roles: body.Roles}, body.Channel, body.Action)
	decision := "deny"
	if d.Allowed {
		decision = "allow"
	}
	return c.JSON(fiber.Map{"allowed": d.Allowed, "decision": decision, "rule": ruleJSON(d.Rule),
		"reason": d.Reason(), "version": policy.Version()})
}

// getLimits shows an app's limits: as set, as its plan bounds them, and
// what this node refused.
func (s *Server) getLimits(c *fiber.Ctx) error {
	app, err := s.existingApp(c)
	if err != nil {
		return err
	}
	plan, err := s.Plans.Plan(c.UserContext(), app.Plan)
	if err != nil {
		return s.storeError(err)
	}
	usage := s.gateway.Meter().Usage(app.ID)
	return c.JSON(fiber.Map{"app_id": app.ID, "plan": plan.Name, "settings": app.Settings.Limits,
		"plan_limits": plan.Limits, "effective": plan.Apply(app.Settings.Limits),
		"node": fiber.Map{"connections": usage.Connections, "rejected": usage.Rejected}})
}

func (s *Server) listPlans(c *fiber.Ctx) error {
	plans, err := s.Plans.List(c.UserContext())
	if err != nil {
		return s.storeError(err)
	}
	return c.JSON(fiber.Map{"plans": plans})
}

// planOf returns the plan of a tenant, for checking an app's limits.
func (s *Server) planOf(c *fiber.Ctx, name string) (billing.Plan, error) {
	plan, err := s.Plans.Plan(c.UserContext(), name)
	if err != nil {
		return billing.Plan{}, s.storeError(err)
	}
	return plan, nil
}
