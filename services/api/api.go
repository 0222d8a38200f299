package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/services/audit"
	"github.com/heraldrt/herald/services/gateway"
	"github.com/heraldrt/herald/tenants"
)

// Gateway is what the API needs from the gateway node; *gateway.Node
// satisfies it.
type Gateway interface {
	Publish(ctx context.Context, app *tenants.App, out []gateway.Outgoing) error
	Channels(ctx context.Context, appID, prefix string, users bool) ([]gateway.ChannelInfo, error)
	Channel(ctx context.Context, appID, channel string) (gateway.ChannelInfo, error)
	Users(ctx context.Context, appID, channel string) ([]string, error)
	TerminateUser(ctx context.Context, appID, userID string) error
	InvalidateApp(ctx context.Context, appID string) error
	ConnectionsByNode(ctx context.Context, appID string) (map[string]int, error)
	ReadHistory(ctx context.Context, app *tenants.App, channel string, q gateway.HistoryQuery) (*gateway.HistoryPage, *gateway.HistoryError)
	Meter() *billing.Meter
}

var _ Gateway = (*gateway.Node)(nil)

// Server serves the REST API.
type Server struct {
	apps    tenants.Store
	gateway Gateway
	log     *slog.Logger
	// Now is the clock used for auth_timestamp checks; tests replace it.
	Now func() time.Time
	// TimestampWindow is how far auth_timestamp may be from Now.
	TimestampWindow time.Duration
	// AdminToken authenticates the management API; empty turns it off.
	AdminToken string
	// Limiter applies the publish and per-IP request rates. New sets a
	// one-node memory limiter.
	Limiter *authz.Limiter
	// Manager makes the management API's changes. New sets one on memory
	// stores; set its Plans, Policies, Audit and Limiter to the real ones.
	Manager *Manager
	// IPRequestsPerSecond bounds REST requests per client IP across the
	// cluster, before the signature is checked. 0: unlimited.
	IPRequestsPerSecond int
	// TrustedProxies are the peers whose X-Forwarded-For names the client.
	TrustedProxies gateway.Proxies
}

// New returns an API server.
func New(apps tenants.Store, gw Gateway, log *slog.Logger) *Server {
	limiter := authz.NewLimiter(authz.LimiterOptions{Log: log})
	return &Server{apps: apps, gateway: gw, log: log, Now: time.Now, TimestampWindow: authz.DefaultTimestampWindow,
		Limiter: limiter,
		Manager: &Manager{Apps: apps, Gateway: gw, Plans: billing.NewMemoryPlans(),
			Policies: authz.NewPolicies(authz.NewMemoryPolicies(), 0), Audit: audit.NewMemoryLog(), Limiter: limiter, Log: log}}
}

// Routes registers every API route on r.
func (s *Server) Routes(r fiber.Router) {
	apps := r.Group("/apps/:app_id", s.authenticate)
	apps.Post("/events", s.postEvents)
	apps.Post("/batch_events", s.postBatchEvents)
	apps.Get("/channels", s.getChannels)
	apps.Get("/channels/:channel_name", s.getChannel)
	apps.Get("/channels/:channel_name/users", s.getUsers)
	apps.Get("/channels/:channel_name/events", s.getChannelEvents)
	apps.Post("/users/:user_id/terminate_connections", s.postTerminate)
}

// authenticate resolves the app from the path and verifies the request's
// signature against that app's keys only; the handlers then find the app
// and the verified query in Locals.
func (s *Server) authenticate(c *fiber.Ctx) error {
	if err := s.limitIP(c); err != nil {
		return err
	}
	app, err := s.apps.AppByID(c.UserContext(), pathParam(c, "app_id"))
	if errors.Is(err, tenants.ErrNotFound) {
		return &Error{fiber.StatusNotFound, "unknown app id"}
	}
	if err != nil {
		s.log.Error("app lookup failed", "err", err)
		return &Error{fiber.StatusServiceUnavailable, "temporarily unavailable, retry"}
	}
	query, err := authz.VerifyRequest(app, authz.Request{
		Method:   c.Method(),
		Path:     string(c.Request().URI().Path()),
		RawQuery: string(c.Request().URI().QueryString()),
		Body:     c.Body(),
	}, s.Now(), s.TimestampWindow)
	if err != nil {
		return err
	}
	if !app.Active() {
		return &Error{fiber.StatusForbidden, "app is disabled"}
	}
	plan, err := s.Manager.Plans.Plan(c.UserContext(), app.Plan)
	if err != nil {
		s.log.Error("plan lookup failed", "app", app.ID, "err", err)
		return &Error{fiber.StatusServiceUnavailable, "temporarily unavailable, retry"}
	}
	c.Locals(localApp, app)
	c.Locals(localLimits, plan.Apply(app.Settings.Limits))
	c.Locals(localQuery, query)
	return c.Next()
}

// clientIP is the caller's address: the peer, or what a trusted proxy
// says.
func (s *Server) clientIP(c *fiber.Ctx) netip.Addr {
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	return s.TrustedProxies.ClientIP(peer, c.Get(fiber.HeaderXForwardedFor))
}

// limitIP applies the per-IP request rate before any work is done for the
// request, so that a flood of unsigned or badly signed requests costs
// little. The bucket is global: the app is not verified yet.
func (s *Server) limitIP(c *fiber.Ctx) error {
	if s.IPRequestsPerSecond <= 0 {
		return nil
	}
	ip := s.clientIP(c)
	v, err := s.Limiter.Take(c.UserContext(), authz.GlobalScope, "rest-ip", ip.String(), authz.PerSecond(int64(s.IPRequestsPerSecond)), 1)
	if err != nil {
		return err
	}
	if !v.Allowed {
		s.gateway.Meter().Rejected("", billing.RejectIPRequestRate)
		return &authz.LimitError{Limit: "ip_requests_per_second", Verdict: v,
			Message: fmt.Sprintf("too many requests from %s: at most %d per second", ip, v.Limit)}
	}
	return nil
}

type localKey int

const (
	localApp localKey = iota
	localLimits
	localQuery
)

// pathParam returns a path parameter as a string of its own. fiber's
// c.Params points into the request buffer, which is reused after the
// handler returns; a value that a store keeps or a queued message carries
// must not change under it.
func pathParam(c *fiber.Ctx, name string) string { return strings.Clone(c.Params(name)) }

func appOf(c *fiber.Ctx) *tenants.App { return c.Locals(localApp).(*tenants.App) }

// limitsOf returns the authenticated app's limits under its plan.
func limitsOf(c *fiber.Ctx) tenants.Limits { return c.Locals(localLimits).(tenants.Limits) }

// param returns a verified query parameter, refusing a repeated one: the
// signature covers every value, but a handler reading just one of them
// would act on something other than what was signed.
func param(c *fiber.Ctx, name string) (string, error) {
	q := c.Locals(localQuery).(url.Values)
	switch vs := q[name]; len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", badRequest(name + " is given more than once")
}

// emptyObject answers {}: what most publishes return, so it is written as
// bytes rather than by marshalling an empty map on every request.
func emptyObject(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(emptyJSON)
}

var emptyJSON = []byte("{}")
