package tenants

import "fmt"

// Settings are an app's limits and features. The JSON shape is the one the
// management API, the CLI and HERALD_APPS use. A zero field means "default".
type Settings struct {
	Limits   Limits   `json:"limits"`
	Features Features `json:"features"`
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

// LimitField is one limit of a Limits value, for code that treats every
// limit alike (defaults, plan ceilings, listings).
type LimitField struct {
	Name    string // the JSON name
	Value   *int
	Default int // 0: the plan's value, or unlimited
	Max     int // the largest value accepted
}

// numLimits is the number of fields of Limits.
const numLimits = 11

// Fields lists every limit of l, pointing into l. It is an array so that
// code running per connection or per request (plan ceilings) allocates
// nothing for it.
func (l *Limits) Fields() [numLimits]LimitField {
	return [numLimits]LimitField{
		{"max_connections", &l.MaxConnections, 0, LimitCeiling},
		{"new_connections_per_second", &l.NewConnectionsPerSecond, 0, 1_000_000},
		{"publishes_per_second", &l.PublishesPerSecond, 0, 1_000_000},
		{"max_connections_per_user", &l.MaxConnectionsPerUser, DefaultMaxConnectionsPerUser, 100_000},
		{"subscriptions_per_second", &l.SubscriptionsPerSecond, DefaultSubscriptionsPerSecond, 100_000},
		{"max_payload_bytes", &l.MaxPayloadBytes, DefaultMaxPayloadBytes, 1 << 20},
		{"max_channels_per_event", &l.MaxChannelsPerEvent, DefaultMaxChannelsPerEvent, 1000},
		{"max_batch_events", &l.MaxBatchEvents, DefaultMaxBatchEvents, 1000},
		{"client_events_per_second", &l.ClientEventsPerSecond, DefaultClientEventsPerSecond, 10000},
		{"max_channels_per_connection", &l.MaxChannelsPerConnection, DefaultMaxChannelsPerConnection, 10000},
		{"max_presence_members", &l.MaxPresenceMembers, DefaultMaxPresenceMembers, 100000},
	}
}

// Normalize fills defaults and checks every field; errors name the field.
func (s *Settings) Normalize() error {
	for _, f := range s.Limits.Fields() {
		if *f.Value < 0 || *f.Value > f.Max {
			return fmt.Errorf("settings.limits.%s must be between 0 and %d", f.Name, f.Max)
		}
		if *f.Value == 0 {
			*f.Value = f.Default
		}
	}
	if s.Features.ClientEvents == nil {
		on := true
		s.Features.ClientEvents = &on
	}
	return nil
}

// ClientEventsEnabled reports whether client events are allowed.
func (f Features) ClientEventsEnabled() bool { return f.ClientEvents == nil || *f.ClientEvents }
