package billing

import (
	"sync"
	"sync/atomic"
)

// Usage is one app's counters since the meter started.
type Usage struct {
	AppID           string
	Published       uint64 // channel publishes accepted (one event to 10 channels is 10)
	Delivered       uint64 // frames handed to connections
	Connections     int64  // open now
	PeakConnections int64
	// Rejected counts refusals by reason (a limit, a quota or the channel
	// policy), so that nothing is refused without a trace.
	Rejected map[string]uint64
}

// Rejection reasons, the label values of herald_rejections_total.
const (
	RejectPolicy           = "policy_denied"
	RejectSubscribeRate    = "subscriptions_per_second"
	RejectClientEventRate  = "client_events_per_second"
	RejectConnectionQuota  = "max_connections"
	RejectConnectionRate   = "new_connections_per_second"
	RejectUserConnections  = "max_connections_per_user"
	RejectChannelsPerConn  = "max_channels_per_connection"
	RejectPresenceFull     = "max_presence_members"
	RejectPublishRate      = "publishes_per_second"
	RejectIPConnectionRate = "ip_connections_per_minute"
	RejectIPRequestRate    = "ip_requests_per_second"
)

// Meter counts usage per app. It is safe for concurrent use.
type Meter struct {
	apps sync.Map // app id -> *counters
}

type counters struct {
	published, delivered atomic.Uint64
	conns, peak          atomic.Int64
	rejected             sync.Map // reason -> *atomic.Uint64
}

func (m *Meter) app(appID string) *counters {
	if c, ok := m.apps.Load(appID); ok {
		return c.(*counters)
	}
	c, _ := m.apps.LoadOrStore(appID, &counters{})
	return c.(*counters)
}

// Published counts n channel publishes.
func (m *Meter) Published(appID string, n int) { m.app(appID).published.Add(uint64(n)) }

// Delivered counts n deliveries of one publish.
func (m *Meter) Delivered(appID string, n int) { m.app(appID).delivered.Add(uint64(n)) }

// Connected counts a new connection and returns the app's open count.
func (m *Meter) Connected(appID string) int64 {
	c := m.app(appID)
	n := c.conns.Add(1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			return n
		}
	}
}

// Disconnected counts a closed connection.
func (m *Meter) Disconnected(appID string) { m.app(appID).conns.Add(-1) }

// Connections returns the app's open connections.
func (m *Meter) Connections(appID string) int64 { return m.app(appID).conns.Load() }

// Rejected counts one refusal of the app's traffic for reason; appID is
// empty for refusals made before the app is known (per-IP limits).
func (m *Meter) Rejected(appID, reason string) {
	c := m.app(appID)
	v, ok := c.rejected.Load(reason)
	if !ok {
		v, _ = c.rejected.LoadOrStore(reason, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// Usage returns one app's usage.
func (m *Meter) Usage(appID string) Usage { return m.app(appID).usage(appID) }

// Snapshot returns every app's usage.
func (m *Meter) Snapshot() []Usage {
	var out []Usage
	m.apps.Range(func(k, v any) bool {
		out = append(out, v.(*counters).usage(k.(string)))
		return true
	})
	return out
}

func (c *counters) usage(appID string) Usage {
	u := Usage{AppID: appID, Published: c.published.Load(), Delivered: c.delivered.Load(),
		Connections: c.conns.Load(), PeakConnections: c.peak.Load(), Rejected: map[string]uint64{}}
	c.rejected.Range(func(reason, n any) bool {
		u.Rejected[reason.(string)] = n.(*atomic.Uint64).Load()
		return true
	})
	return u
}
