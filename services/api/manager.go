package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/services/audit"
	"github.com/heraldrt/herald/services/broker"
	"github.com/heraldrt/herald/services/gateway"
	"github.com/heraldrt/herald/services/protocol"
	"github.com/heraldrt/herald/tenants"
)

// ErrNotAudited is returned when a change was made but its audit entry
// could not be written: the caller must not report plain success.
var ErrNotAudited = errors.New("the change was applied but could not be recorded in the audit log")

// Actor is who makes a change, as the authentication established it: the
// operator token's holder, or a console user. It never comes from a
// request body.
type Actor struct {
	Name string // "operator", "user:ann@example.com"
	IP   string
}

// Manager makes the control-plane changes that the management API and
// the console offer: each is validated, stored, announced to every node
// and recorded in the audit log, the same way whichever door it came
// through.
type Manager struct {
	Apps     tenants.Store
	Gateway  Gateway
	Plans    billing.Plans
	Policies *authz.Policies
	Audit    audit.Log
	// Limiter applies the broadcast and publish rates to broadcasts.
	Limiter *authz.Limiter
	Log     *slog.Logger
	// Users holds console users and their memberships and invites, for
	// the member changes and sign-ups.
	Users tenants.Users
}

// announce tells every node that the app changed. The change is already
// stored, so a failure is logged but does not undo it; caches expire on
// their own.
func (m *Manager) announce(ctx context.Context, appID string) {
	if err := m.Gateway.InvalidateApp(ctx, appID); err != nil {
		m.Log.Error("app change announcement failed", "app", appID, "err", err)
	}
}

// record writes the audit entry of a change; the chain is the tenant's
// unless the entry names one.
func (m *Manager) record(ctx context.Context, a Actor, e audit.Entry) error {
	e.Actor, e.ActorIP = a.Name, a.IP
	if e.Chain == "" {
		e.Chain = e.TenantID
	}
	if _, err := m.Audit.Append(ctx, e); err != nil {
		m.Log.Error("audit append failed", "action", e.Action, "tenant", e.TenantID, "app", e.AppID, "err", err)
		return ErrNotAudited
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", tenants.ErrInvalid, fmt.Sprintf(format, args...))
}

// CreateTenant creates a tenant on plan (free when empty); an empty id is
// generated.
func (m *Manager) CreateTenant(ctx context.Context, a Actor, id, name, plan string) (*tenants.Tenant, error) {
	if name == "" || len(name) > 200 {
		return nil, invalid("name is required (at most 200 characters)")
	}
	if plan == "" {
		plan = tenants.DefaultPlan
	}
	if _, err := m.Plans.Plan(ctx, plan); err != nil {
		return nil, err
	}
	if id == "" {
		id = tenants.NewTenantID()
	}
	t := &tenants.Tenant{ID: id, Name: name, Plan: plan, Status: tenants.TenantActive}
	if err := m.Apps.CreateTenant(ctx, t); err != nil {
		return nil, err
	}
	created, err := m.Apps.Tenant(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	return created, m.record(ctx, a, audit.Entry{Chain: audit.PlatformChain, TenantID: t.ID, Action: "tenant.create", Target: t.ID,
		Details: map[string]string{"plan": plan}})
}

// SetTenantStatus suspends or activates a tenant; its apps' connections
// follow on every node.
func (m *Manager) SetTenantStatus(ctx context.Context, a Actor, id, status string) (*tenants.Tenant, error) {
	if err := m.Apps.SetTenantStatus(ctx, id, status); err != nil {
		return nil, err
	}
	apps, err := m.Apps.Apps(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, app := range apps {
		m.announce(ctx, app.ID)
	}
	t, err := m.Apps.Tenant(ctx, id)
	if err != nil {
		return nil, err
	}
	action := "tenant.activate"
	if status == tenants.TenantSuspended {
		action = "tenant.suspend"
	}
	return t, m.record(ctx, a, audit.Entry{Chain: audit.PlatformChain, TenantID: id, Action: action, Target: id})
}

// AppChange is what a create or an update of an app sets; nil fields are
// left as they are (or take their defaults on create).
type AppChange struct {
	ID       string            `json:"id"`
	TenantID string            `json:"tenant_id"`
	Name     *string           `json:"name"`
	Enabled  *bool             `json:"enabled"`
	Settings *tenants.Settings `json:"settings"`
}

// fields names the fields a change sets, for the audit entry.
func (ch AppChange) fields() map[string]string {
	var fields []string
	if ch.Name != nil {
		fields = append(fields, "name")
	}
	if ch.Enabled != nil {
		fields = append(fields, "enabled")
	}
	if ch.Settings != nil {
		fields = append(fields, "settings")
	}
	return map[string]string{"fields": strings.Join(fields, ",")}
}

// withinPlan fills the settings' defaults and refuses limits above the
// plan's ceilings, naming the limit.
func withinPlan(plan billing.Plan, settings *tenants.Settings) error {
	if err := settings.Normalize(); err != nil {
		return invalid("%v", err)
	}
	return plan.Check(settings.Limits)
}

// CreateApp creates an app of ch.TenantID with a fresh key, which it
// returns: the only time its secret is shown.
func (m *Manager) CreateApp(ctx context.Context, a Actor, ch AppChange) (*tenants.App, tenants.Key, error) {
	if ch.TenantID == "" {
		return nil, tenants.Key{}, invalid("tenant_id is required")
	}
	tenant, err := m.Apps.Tenant(ctx, ch.TenantID)
	if err != nil {
		return nil, tenants.Key{}, err
	}
	plan, err := m.Plans.Plan(ctx, tenant.Plan)
	if err != nil {
		return nil, tenants.Key{}, err
	}
	app := tenants.NewApp("")
	app.TenantID = ch.TenantID
	if ch.ID != "" {
		app.ID = ch.ID
	}
	if ch.Name != nil {
		app.Name = *ch.Name
	}
	if app.Name == "" {
		return nil, tenants.Key{}, invalid("name is required")
	}
	if ch.Enabled != nil {
		app.Enabled = *ch.Enabled
	}
	if ch.Settings != nil {
		app.Settings = *ch.Settings
	}
	if err := withinPlan(plan, &app.Settings); err != nil {
		return nil, tenants.Key{}, err
	}
	if _, err := m.Apps.AppByID(ctx, app.ID); err == nil {
		return nil, tenants.Key{}, fmt.Errorf("%w: app id %s is taken", tenants.ErrConflict, app.ID)
	}
	if err := m.Apps.PutApp(ctx, app); err != nil {
		return nil, tenants.Key{}, err
	}
	stored, err := m.Apps.AppByID(ctx, app.ID)
	if err != nil {
		return nil, tenants.Key{}, err
	}
	key := app.PrimaryKey()
	return stored, key, m.record(ctx, a, audit.Entry{TenantID: stored.TenantID, AppID: stored.ID, Action: "app.create", Target: stored.ID,
		Details: map[string]string{"key": key.Key}})
}

// UpdateApp changes an app's name, enabled flag or settings (within its
// plan); id and tenant cannot change.
func (m *Manager) UpdateApp(ctx context.Context, a Actor, appID string, ch AppChange) (*tenants.App, error) {
	if ch.ID != "" || ch.TenantID != "" {
		return nil, invalid("id and tenant_id cannot be changed")
	}
	current, err := m.Apps.AppByID(ctx, appID)
	if err != nil {
		return nil, err
	}
	plan, err := m.Plans.Plan(ctx, current.Plan)
	if err != nil {
		return nil, err
	}
	app, err := m.Apps.UpdateApp(ctx, current.ID, func(app *tenants.App) error {
		if ch.Name != nil {
			app.Name = *ch.Name
		}
		if ch.Enabled != nil {
			app.Enabled = *ch.Enabled
		}
		if ch.Settings != nil {
			app.Settings = *ch.Settings
			return withinPlan(plan, &app.Settings)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.announce(ctx, app.ID)
	return app, m.record(ctx, a, audit.Entry{TenantID: app.TenantID, AppID: app.ID, Action: "app.update", Target: app.ID, Details: ch.fields()})
}

// DisableApp disables an app; its connections are closed on every node.
func (m *Manager) DisableApp(ctx context.Context, a Actor, appID string) (*tenants.App, error) {
	app, err := m.Apps.UpdateApp(ctx, appID, func(app *tenants.App) error {
		app.Enabled = false
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.announce(ctx, app.ID)
	return app, m.record(ctx, a, audit.Entry{TenantID: app.TenantID, AppID: app.ID, Action: "app.disable", Target: app.ID})
}

// CreateKey adds a key to an app (the first half of a rotation) and
// returns it with its secret, shown this once.
func (m *Manager) CreateKey(ctx context.Context, a Actor, appID string) (tenants.Key, error) {
	app, err := m.Apps.AppByID(ctx, appID)
	if err != nil {
		return tenants.Key{}, err
	}
	k, err := m.Apps.CreateKey(ctx, app.ID)
	if err != nil {
		return tenants.Key{}, err
	}
	m.announce(ctx, app.ID)
	return k, m.record(ctx, a, audit.Entry{TenantID: app.TenantID, AppID: app.ID, Action: "key.create", Target: k.Key})
}

// RevokeKey revokes one of an app's keys; connections made with it are
// asked to reconnect, and then fail.
func (m *Manager) RevokeKey(ctx context.Context, a Actor, appID, key string) error {
	app, err := m.Apps.AppByID(ctx, appID)
	if err != nil {
		return err
	}
	if err := m.Apps.RevokeKey(ctx, app.ID, key); err != nil {
		return err
	}
	m.announce(ctx, app.ID)
	return m.record(ctx, a, audit.Entry{TenantID: app.TenantID, AppID: app.ID, Action: "key.revoke", Target: key})
}

// ReplacePolicy stores doc as the app's next policy version (an invalid
// document is an *authz.PolicyError and changes nothing); every node then
// re-checks its subscriptions against it.
func (m *Manager) ReplacePolicy(ctx context.Context, a Actor, appID, doc string) (authz.PolicyVersion, error) {
	app, err := m.Apps.AppByID(ctx, appID)
	if err != nil {
		return authz.PolicyVersion{}, err
	}
	v, err := m.Policies.Store().Replace(ctx, app.ID, doc, a.Name)
	if err != nil {
		return authz.PolicyVersion{}, err
	}
	m.Log.Info("channel policy replaced", "app", app.ID, "version", v.Version, "author", v.Author)
	m.announce(ctx, app.ID)
	sum := sha256.Sum256([]byte(v.Document))
	return v, m.record(ctx, a, audit.Entry{TenantID: app.TenantID, AppID: app.ID, Action: "policy.replace",
		Target:  "version " + strconv.FormatInt(v.Version, 10),
		Details: map[string]string{"policy_sha256": hex.EncodeToString(sum[:])}})
}

// CheckPolicy says what the app's policy, or draft when given, decides
// for a subject, channel and action.
func (m *Manager) CheckPolicy(ctx context.Context, appID string, draft *string, s authz.Subject, channel, action string) (authz.Decision, *authz.Policy, error) {
	switch {
	case channel == "":
		return authz.Decision{}, nil, invalid("channel is required")
	case action != authz.ActionSubscribe && action != authz.ActionClientEvent:
		return authz.Decision{}, nil, invalid(`action must be "subscribe" or "client-event"`)
	case len(s.Roles) > 32:
		return authz.Decision{}, nil, invalid("roles lists more than 32 roles")
	}
	app, err := m.Apps.AppByID(ctx, appID)
	if err != nil {
		return authz.Decision{}, nil, err
	}
	var policy *authz.Policy
	if draft != nil {
		policy, err = authz.CompilePolicy(app.ID, *draft, 0)
	} else {
		var v authz.PolicyVersion
		if v, err = m.Policies.Store().Current(ctx, app.ID); err != nil {
			return authz.Decision{}, nil, err
		}
		policy, err = authz.CompilePolicy(app.ID, v.Document, v.Version)
	}
	if err != nil {
		return authz.Decision{}, nil, err
	}
	return policy.Check(s, channel, action), policy, nil
}

// Broadcast limits (security.md CON-7).
var (
	broadcastRate        = authz.PerMinute(10)
	maxBroadcastChannels = 10
)

// Broadcast is an operator's message to channels of an app.
type Broadcast struct {
	AppID    string
	Channels []string
	Event    string
	Data     string // the JSON payload, as tenants' backends send it
	Reason   string
}

// Broadcast publishes an operator's message through the same path as a
// tenant's publish: validated like one, limited to 10 a minute per app and
// by the app's publish rate, and audited before it is sent, so a broadcast
// that cannot be recorded is not sent at all. It returns how many
// subscriptions the channels had when it went out.
func (m *Manager) Broadcast(ctx context.Context, a Actor, b Broadcast) (int, error) {
	app, err := m.Apps.AppByID(ctx, b.AppID)
	if err != nil {
		return 0, err
	}
	if !app.Active() {
		return 0, invalid("app %s is disabled", app.ID)
	}
	plan, err := m.Plans.Plan(ctx, app.Plan)
	if err != nil {
		return 0, err
	}
	limits := plan.Apply(app.Settings.Limits)
	switch {
	case len(b.Channels) == 0 || len(b.Channels) > maxBroadcastChannels:
		return 0, invalid("a broadcast goes to 1 to %d channels", maxBroadcastChannels)
	case b.Event == "" || len(b.Event) > protocol.MaxEventNameLength || protocol.ReservedEvent(b.Event):
		return 0, invalid("event must be 1 to %d characters and not start with pusher:, pusher_internal: or herald:", protocol.MaxEventNameLength)
	case len(b.Data) > limits.MaxPayloadBytes:
		return 0, invalid("the payload is over %d bytes", limits.MaxPayloadBytes)
	case !json.Valid([]byte(b.Data)):
		return 0, invalid("the payload must be JSON")
	case strings.TrimSpace(b.Reason) == "" || len(b.Reason) > 500:
		return 0, invalid("a reason is required (at most 500 characters)")
	}
	for _, ch := range b.Channels {
		if !protocol.ValidChannelName(ch) {
			return 0, invalid("invalid channel name %q", protocol.Shorten(ch, 200))
		}
	}
	if v, err := m.Limiter.Take(ctx, app.ID, "broadcast", "app", broadcastRate, 1); err != nil || !v.Allowed {
		return 0, &authz.LimitError{Limit: "broadcasts_per_minute", Verdict: v, Message: "at most 10 operator broadcasts a minute per app"}
	}
	if v, err := m.Limiter.Take(ctx, app.ID, "publish", "app", authz.PerSecond(int64(limits.PublishesPerSecond)), int64(len(b.Channels))); err != nil || !v.Allowed {
		return 0, &authz.LimitError{Limit: "publishes_per_second", Verdict: v, Message: "the app is over its publish rate"}
	}
	reached := 0
	for _, ch := range b.Channels {
		info, err := m.Gateway.Channel(ctx, app.ID, ch)
		if err != nil {
			return 0, err
		}
		reached += info.Subscriptions
	}
	sum := sha256.Sum256([]byte(b.Data))
	if err := m.record(ctx, a, audit.Entry{TenantID: app.TenantID, AppID: app.ID, Action: "broadcast.send", Target: strings.Join(b.Channels, ","),
		Reason: b.Reason, Details: map[string]string{"event": b.Event, "channels": strings.Join(b.Channels, ","),
			"payload_sha256": hex.EncodeToString(sum[:]), "reached": strconv.Itoa(reached)}}); err != nil {
		return 0, err
	}
	out := make([]gateway.Outgoing, len(b.Channels))
	for i, ch := range b.Channels {
		out[i] = gateway.Outgoing{Channel: ch, Pub: broker.Publication{Event: b.Event, Data: []byte(b.Data)}}
	}
	if err := m.Gateway.Publish(ctx, app, out); err != nil {
		return 0, err
	}
	return reached, nil
}
