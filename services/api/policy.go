package api

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/tenants"
)

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
	v, err := s.Manager.Policies.Store().Current(c.UserContext(), app.ID)
	if err != nil {
		return s.storeError(err)
	}
	return c.JSON(policyJSON(v))
}

// putPolicy replaces the app's policy with a new version; every node
// re-checks its open subscriptions against it.
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
	v, err := s.Manager.ReplacePolicy(c.UserContext(), s.actor(c), pathParam(c, "app_id"), *body.Policy)
	if err != nil {
		return s.storeError(err)
	}
	return c.JSON(policyJSON(v))
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
	vs, err := s.Manager.Policies.Store().History(c.UserContext(), app.ID, limit)
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
	d, policy, err := s.Manager.CheckPolicy(c.UserContext(), pathParam(c, "app_id"), body.Policy,
		authz.Subject{UserID: body.UserID, Roles: body.Roles}, body.Channel, body.Action)
	if err != nil {
		return s.storeError(err)
	}
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
	plan, err := s.Manager.Plans.Plan(c.UserContext(), app.Plan)
	if err != nil {
		return s.storeError(err)
	}
	usage := s.gateway.Meter().Usage(app.ID)
	return c.JSON(fiber.Map{"app_id": app.ID, "plan": plan.Name, "settings": app.Settings.Limits,
		"plan_limits": plan.Limits, "effective": plan.Apply(app.Settings.Limits),
		"node": fiber.Map{"connections": usage.Connections, "rejected": usage.Rejected}})
}

func (s *Server) listPlans(c *fiber.Ctx) error {
	plans, err := s.Manager.Plans.List(c.UserContext())
	if err != nil {
		return s.storeError(err)
	}
	return c.JSON(fiber.Map{"plans": plans})
}
