package tenants

import "fmt"

// Settings are an app's limits and features. The JSON shape is the one the
// management API, the CLI and HERALD_APPS use. A zero field means "default".
type Settings struct {
	Limits   Limits   `json:"limits"`
	Features Features `json:"features"`
}

// Limits bound what one app, one connection or one request may do.
type Limits struct {
	// MaxConnections is the app's concurrent connection quota; over it a
	// new connection is closed with 4004. 0 means unlimited.
	MaxConnections int `json:"max_connections"`
	// MaxPayloadBytes bounds event data, from the REST API or a client
	// event. Default 10240 (Pusher's 10 KB).
	MaxPayloadBytes int `json:"max_payload_bytes"`
	// MaxChannelsPerEvent bounds the channels of one publish. Default 100.
	MaxChannelsPerEvent int `json:"max_channels_per_event"`
	// MaxBatchEvents bounds the events of one batch publish. Default 10.
	MaxBatchEvents int `json:"max_batch_events"`
	// ClientEventsPerSecond bounds client events per connection; the excess
	// gets a 4301 error. Default 10.
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
}

// Defaults of every limit.
const (
	DefaultMaxPayloadBytes          = 10240
	DefaultMaxChannelsPerEvent      = 100
	DefaultMaxBatchEvents           = 10
	DefaultClientEventsPerSecond    = 10
	DefaultMaxChannelsPerConnection = 100
	DefaultMaxPresenceMembers       = 100
)

// Normalize fills defaults and checks every field; errors name the field.
func (s *Settings) Normalize() error {
	l := &s.Limits
	fields := []struct {
		name string
		v    *int
		def  int
		max  int
	}{
		{"max_connections", &l.MaxConnections, 0, 10_000_000},
		{"max_payload_bytes", &l.MaxPayloadBytes, DefaultMaxPayloadBytes, 1 << 20},
		{"max_channels_per_event", &l.MaxChannelsPerEvent, DefaultMaxChannelsPerEvent, 1000},
		{"max_batch_events", &l.MaxBatchEvents, DefaultMaxBatchEvents, 1000},
		{"client_events_per_second", &l.ClientEventsPerSecond, DefaultClientEventsPerSecond, 10000},
		{"max_channels_per_connection", &l.MaxChannelsPerConnection, DefaultMaxChannelsPerConnection, 10000},
		{"max_presence_members", &l.MaxPresenceMembers, DefaultMaxPresenceMembers, 100000},
	}
	for _, f := range fields {
		if *f.v < 0 || *f.v > f.max {
			return fmt.Errorf("settings.limits.%s must be between 0 and %d", f.name, f.max)
		}
		if *f.v == 0 {
			*f.v = f.def
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
