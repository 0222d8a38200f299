package tenants

import (
	"encoding/json"
	"fmt"
	"time"
)

// Settings are an app's limits and features. The JSON shape is the one the
// management API, the CLI and HERALD_APPS use. A zero field means "default".
type Settings struct {
	Limits   Limits   `json:"limits"`
	Features Features `json:"features"`
	// Durable lists the app's durable channels: the first rule whose
	// pattern matches a channel makes it durable, with that retention.
	// Other channels are ephemeral.
	Durable []DurableRule `json:"durable,omitempty"`
}

// DurableRule makes the channels that match Pattern durable: every event
// published to them is numbered and logged, and kept for catch-up until it
// is older than MaxAge or MaxEvents newer events follow it.
type DurableRule struct {
	// Pattern is a channel glob: '*' matches any run of characters.
	Pattern string `json:"pattern"`
	// MaxEvents is how many of a channel's latest events are kept.
	// Default 1000.
	MaxEvents int `json:"max_events"`
	// MaxAge is how long an event is kept, as a Go duration ("24h").
	// Default 24h.
	MaxAge Duration `json:"max_age"`
}

// Durable channel limits.
const (
	MaxDurableRules         = 20
	DefaultDurableMaxEvents = 1000
	MaxDurableMaxEvents     = 100_000
	DefaultDurableMaxAge    = 24 * time.Hour
	MaxDurableMaxAge        = 30 * 24 * time.Hour
)

// DurableFor returns the rule that makes channel durable, if one does.
func (s *Settings) DurableFor(channel string) (*DurableRule, bool) {
	for i := range s.Durable {
		if ChannelGlob(channel, s.Durable[i].Pattern) {
			return &s.Durable[i], true
		}
	}
	return nil, false
}

// Duration is a time.Duration written in JSON as a Go duration string.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"24h\" or \"90m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: use a number with a unit, such as \"24h\" or \"90m\"", s)
	}
	*d = Duration(v)
	return nil
}

// Limits bound what one app, one connection or one request may do.
//
// The app's plan bounds every limit: a value above the plan's ceiling is
// refused when the app is changed, and the quotas left at 0
// (max_connections, new_connections_per_second, publishes_per_second) take
// the plan's value.
type Limits struct {
	// MaxConnections is the app's concurrent connection quota, counted
	// across the cluster; over it a new connection is closed with 4004.
	// 0 means the plan's quota.
	MaxConnections int `json:"max_connections"`
	// NewConnectionsPerSecond bounds the app's new connections across the
	// cluster; the excess is closed with 4100 (reconnect after a back-off).
	// 0 means the plan's rate.
	NewConnectionsPerSecond int `json:"new_connections_per_second"`
	// PublishesPerSecond bounds the app's REST publishes across the
	// cluster, counting channel publishes (one event to 10 channels is 10);
	// the excess gets 429. 0 means the plan's rate.
	PublishesPerSecond int `json:"publishes_per_second"`
	// MaxConnectionsPerUser bounds the connections signed in as one user,
	// across the cluster; a sign-in over it closes the connection with
	// 4100. Default 100.
	MaxConnectionsPerUser int `json:"max_connections_per_user"`
	// SubscriptionsPerSecond bounds subscribes per user (per connection
	// before sign-in), averaged over 5-second windows so that a
	// reconnecting client can resubscribe many channels at once. Default 20.
	SubscriptionsPerSecond int `json:"subscriptions_per_second"`
	// MaxPayloadBytes bounds event data, from the REST API or a client
	// event. Default 10240 (Pusher's 10 KB).
	MaxPayloadBytes int `json:"max_payload_bytes"`
	// MaxChannelsPerEvent bounds the channels of one publish. Default 100.
	MaxChannelsPerEvent int `json:"max_channels_per_event"`
	// MaxBatchEvents bounds the events of one batch publish. Default 10.
	MaxBatchEvents int `json:"max_batch_events"`
	// ClientEventsPerSecond bounds client events per user (per connection
	// before sign-in), across the cluster; the excess gets a 4301 error.
	// Default 10.
	ClientEventsPerSecond int `json:"client_events_per_second"`
	// MaxChannelsPerConnection bounds one connection's subscriptions.
	// Default 100.
	MaxChannelsPerConnection int `json:"max_channels_per_connection"`
	// MaxPresenceMembers bounds distinct users per presence channel.
	// Default 100.
	MaxPresenceMembers int `json:"max_presence_members"`
}

// Features switch protocol features on or off per app.
type Features struct {
	// ClientEvents allows client- events on private and presence channels.
	// Default true.
	ClientEvents *bool `json:"client_events,omitempty"`
	// PolicyAuthorizedPrivate lets a signed-in user subscribe to a
	// private- channel without a channel token when an allow rule of the
	// app's channel policy names the user or one of its roles. Default
	// false.
	PolicyAuthorizedPrivate bool `json:"policy_authorized_private,omitempty"`
}

// Defaults of every limit.
const (
	DefaultMaxPayloadBytes          = 10240
	DefaultMaxChannelsPerEvent      = 100
	DefaultMaxBatchEvents           = 10
	DefaultClientEventsPerSecond    = 10
	DefaultMaxChannelsPerConnection = 100
	DefaultMaxPresenceMembers       = 100
	DefaultMaxConnectionsPerUser    = 100
	DefaultSubscriptionsPerSecond   = 20
)

// LimitCeiling is the largest value any limit field accepts.
const LimitCeiling = 10_000_000

// LimitSpec describes one limit of Limits: its JSON name, its default (0:
// the plan's value, or unlimited) and the largest value accepted.
type LimitSpec struct {
	Name    string
	Default int
	Max     int
}

// LimitSpecs lists every limit in the order of the struct; Limits.At(i)
// is the value of LimitSpecs[i]. Code that treats limits alike (defaults,
// plan ceilings) walks them by index rather than building a table per
// call: plan ceilings are applied on every connect, on the connection's
// own goroutine, whose stack must stay small, and on every REST request.
var LimitSpecs = [...]LimitSpec{
	{"max_connections", 0, LimitCeiling},
	{"new_connections_per_second", 0, 1_000_000},
	{"publishes_per_second", 0, 1_000_000},
	{"max_connections_per_user", DefaultMaxConnectionsPerUser, 100_000},
	{"subscriptions_per_second", DefaultSubscriptionsPerSecond, 100_000},
	{"max_payload_bytes", DefaultMaxPayloadBytes, 1 << 20},
	{"max_channels_per_event", DefaultMaxChannelsPerEvent, 1000},
	{"max_batch_events", DefaultMaxBatchEvents, 1000},
	{"client_events_per_second", DefaultClientEventsPerSecond, 10000},
	{"max_channels_per_connection", DefaultMaxChannelsPerConnection, 10000},
	{"max_presence_members", DefaultMaxPresenceMembers, 100000},
}

// At returns a pointer to the limit LimitSpecs[i] describes.
func (l *Limits) At(i int) *int {
	switch i {
	case 0:
		return &l.MaxConnections
	case 1:
		return &l.NewConnectionsPerSecond
	case 2:
		return &l.PublishesPerSecond
	case 3:
		return &l.MaxConnectionsPerUser
	case 4:
		return &l.SubscriptionsPerSecond
	case 5:
		return &l.MaxPayloadBytes
	case 6:
		return &l.MaxChannelsPerEvent
	case 7:
		return &l.MaxBatchEvents
	case 8:
		return &l.ClientEventsPerSecond
	case 9:
		return &l.MaxChannelsPerConnection
	case 10:
		return &l.MaxPresenceMembers
	}
	panic(fmt.Sprintf("tenants: no limit %d", i))
}

// Normalize fills defaults and checks every field; errors name the field.
func (s *Settings) Normalize() error {
	for i := range LimitSpecs {
		spec := &LimitSpecs[i]
		v := s.Limits.At(i)
		if *v < 0 || *v > spec.Max {
			return fmt.Errorf("settings.limits.%s must be between 0 and %d", spec.Name, spec.Max)
		}
		if *v == 0 {
			*v = spec.Default
		}
	}
	if s.Features.ClientEvents == nil {
		on := true
		s.Features.ClientEvents = &on
	}
	return s.normalizeDurable()
}

func (s *Settings) normalizeDurable() error {
	if len(s.Durable) > MaxDurableRules {
		return fmt.Errorf("settings.durable has %d rules; at most %d are allowed", len(s.Durable), MaxDurableRules)
	}
	for i := range s.Durable {
		r := &s.Durable[i]
		if err := CheckGlob(r.Pattern); err != nil {
			return fmt.Errorf("settings.durable[%d].pattern: %v", i, err)
		}
		if r.MaxEvents == 0 {
			r.MaxEvents = DefaultDurableMaxEvents
		}
		if r.MaxEvents < 1 || r.MaxEvents > MaxDurableMaxEvents {
			return fmt.Errorf("settings.durable[%d].max_events must be between 1 and %d", i, MaxDurableMaxEvents)
		}
		if r.MaxAge == 0 {
			r.MaxAge = Duration(DefaultDurableMaxAge)
		}
		if r.MaxAge < Duration(time.Second) || r.MaxAge > Duration(MaxDurableMaxAge) {
			return fmt.Errorf("settings.durable[%d].max_age must be between 1s and %s", i, MaxDurableMaxAge)
		}
	}
	return nil
}

// ClientEventsEnabled reports whether client events are allowed.
func (f Features) ClientEventsEnabled() bool { return f.ClientEvents == nil || *f.ClientEvents }
