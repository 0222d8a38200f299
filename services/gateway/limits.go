package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/services/presence"
	"github.com/heraldrt/herald/services/protocol"
	"github.com/heraldrt/herald/tenants"
)

// appSlot is the name under which Connections counts an app's
// connections; a user's are counted under userSlot(id).
const appSlot = "app"

func userSlot(userID string) string { return "user:" + userID }

// subscribeWindow is the window of the subscription rate: averaging over
// a few seconds lets a reconnecting client resubscribe its channels at
// once while a steady flood is still cut to the per-second rate.
const subscribeWindow = 5 * time.Second

// maxRoles bounds the roles taken from a user's signed user_info.
const maxRoles = 32

// admit applies the app's new-connection rate and connection quota to a
// new connection and returns the app's limits under its plan. A connection
// admitted holds one of the app's slots until disconnect releases it.
func (n *Node) admit(ctx context.Context, app *tenants.App) (tenants.Limits, *Refusal) {
	unavailable := &Refusal{protocol.CodeOverCapacity, "temporarily unavailable, retry"}
	plan, err := n.plans.Plan(ctx, app.Plan)
	if err != nil {
		n.log.Error("plan lookup failed", "app", app.ID, "plan", app.Plan, "err", err)
		return tenants.Limits{}, unavailable
	}
	limits := plan.Apply(app.Settings.Limits)
	if v, err := n.limiter.Take(ctx, app.ID, "connect", appSlot, authz.PerSecond(int64(limits.NewConnectionsPerSecond)), 1); err != nil || !v.Allowed {
		n.meter.Rejected(app.ID, billing.RejectConnectionRate)
		return limits, &Refusal{protocol.CodeOverCapacity, fmt.Sprintf("app is over its rate of new connections (new_connections_per_second %d), reconnect later", limits.NewConnectionsPerSecond)}
	}
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	ok, err := n.conns.Acquire(ctx, app.ID, appSlot, limits.MaxConnections)
	if err != nil {
		n.log.Error("connection quota check failed", "app", app.ID, "err", err)
		return limits, unavailable
	}
	if !ok {
		n.meter.Rejected(app.ID, billing.RejectConnectionQuota)
		return limits, &Refusal{protocol.CodeOverQuota, fmt.Sprintf("app is over its connection quota (max_connections %d)", limits.MaxConnections)}
	}
	return limits, nil
}

// release gives back the quota slots a disconnected client held.
func (n *Node) release(c *Client) {
	ctx, cancel := n.bounded(context.Background())
	defer cancel()
	if err := n.conns.Add(ctx, c.app.ID, appSlot, -1); err != nil {
		n.log.Error("connection quota release failed", "app", c.app.ID, "err", err)
	}
	if c.userSlot {
		if err := n.conns.Add(ctx, c.app.ID, userSlot(c.userID), -1); err != nil {
			n.log.Error("user connection quota release failed", "app", c.app.ID, "err", err)
		}
	}
}

// allowSubscribe takes one subscription from the subscriber's rate: the
// signed-in user's, shared by all its connections through the limiter,
// else the connection's own bucket, which needs no shared store.
func (n *Node) allowSubscribe(c *Client) bool {
	per := c.limits.SubscriptionsPerSecond
	if per == 0 {
		return true
	}
	user := c.signedInUser()
	if user == "" {
		burst := float64(per) * subscribeWindow.Seconds()
		return c.subscribes.take(time.Now(), float64(per), burst)
	}
	rate := authz.Rate{Limit: int64(per) * int64(subscribeWindow/time.Second), Period: subscribeWindow}
	v, err := n.limiter.Take(context.Background(), c.app.ID, "subscribe", "u:"+user, rate, 1)
	return err == nil && v.Allowed
}

// allowClientEvent takes one client event from the sender's rate, shared
// or the connection's own like allowSubscribe.
func (n *Node) allowClientEvent(c *Client) bool {
	per := c.limits.ClientEventsPerSecond
	if per == 0 {
		return true
	}
	user := c.signedInUser()
	if user == "" {
		return c.clientEvents.take(time.Now(), float64(per), float64(per))
	}
	v, err := n.limiter.Take(context.Background(), c.app.ID, "client-event", "u:"+user, authz.PerSecond(int64(per)), 1)
	return err == nil && v.Allowed
}

// tokenBucket is a rate limit of one connection: rate tokens a second up
// to burst, taken one at a time. The zero value starts full.
type tokenBucket struct {
	tokens   float64
	refilled int64 // unix nanoseconds; 0 before the first take
}

func (b *tokenBucket) take(now time.Time, rate, burst float64) bool {
	t := now.UnixNano()
	if b.refilled == 0 {
		b.tokens = burst
	} else {
		b.tokens = min(burst, b.tokens+float64(t-b.refilled)/1e9*rate)
	}
	b.refilled = t
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// AllowHandshake applies the per-IP rate of new connections before a
// WebSocket upgrade; the bucket is global because the app is not known
// yet, and unknown-key attempts count too.
func (n *Node) AllowHandshake(ctx context.Context, ip string) (authz.Verdict, error) {
	v, err := n.limiter.Take(ctx, authz.GlobalScope, "ws-ip", ip, authz.PerMinute(int64(n.cfg.IPConnectionsPerMinute)), 1)
	if err == nil && !v.Allowed {
		n.meter.Rejected("", billing.RejectIPConnectionRate)
	}
	return v, err
}

// subjectOf is who the channel policy judges for a subscription: the
// presence member it joins as, else the signed-in user, else anonymous.
func (c *Client) subjectOf(member *presence.Member) authz.Subject {
	if member != nil {
		return authz.Subject{UserID: member.UserID, Roles: rolesOf(member.UserInfo)}
	}
	return authz.Subject{UserID: c.signedInUser(), Roles: c.roles}
}

// rolesOf reads the roles a tenant's backend put in a user's signed
// user_info ({"roles": ["admin", ...]}). Anything else there is not
// Herald's business, and a user_info without roles has none.
func rolesOf(userInfo json.RawMessage) []string {
	if len(userInfo) == 0 {
		return nil
	}
	var info struct {
		Roles []json.RawMessage `json:"roles"`
	}
	if json.Unmarshal(userInfo, &info) != nil {
		return nil
	}
	var roles []string
	for _, raw := range info.Roles {
		var r string
		if json.Unmarshal(raw, &r) == nil && r != "" {
			roles = append(roles, r)
		}
		if len(roles) == maxRoles {
			break
		}
	}
	return roles
}

// policyFor returns the app's channel policy; on failure the caller
// refuses rather than skipping the check.
func (n *Node) policyFor(c *Client) (*authz.Policy, error) {
	ctx, cancel := n.bounded(context.Background())
	defer cancel()
	p, err := n.policies.For(ctx, c.app.ID)
	if err != nil {
		n.log.Error("policy lookup failed", "app", c.app.ID, "err", err)
	}
	return p, err
}

// recheckSubscriptions ends the subscriptions of c that policy no longer
// allows: each gets a pusher:subscription_error naming the channel, then
// is unsubscribed as if the client had asked.
func (n *Node) recheckSubscriptions(c *Client, policy *authz.Policy) {
	c.ops.Lock()
	defer c.ops.Unlock()
	if c.ended {
		return
	}
	for _, s := range c.channels {
		d := policy.Check(s.subject, s.channel, authz.ActionSubscribe)
		if d.Allowed && (!s.byPolicy || d.Explicit()) {
			continue
		}
		n.meter.Rejected(c.app.ID, billing.RejectPolicy)
		// Out of the hub first: once the client has the notice, no event
		// of the channel follows it.
		n.unsubscribe(c, s)
		c.Enqueue(subscriptionError(s.channel, "PolicyDenied", 403,
			fmt.Sprintf("subscription to %q ended: the app's channel policy no longer allows it", s.channel)))
	}
}

// subscriptionError encodes a pusher:subscription_error for channel, the
// event pusher-js hands to the channel's error handlers.
func subscriptionError(channel, typ string, status int, msg string) []byte {
	data, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Error  string `json:"error"`
		Status int    `json:"status"`
	}{typ, msg, status})
	return protocol.AppendEvent(nil, "pusher:subscription_error", channel, data, "")
}
