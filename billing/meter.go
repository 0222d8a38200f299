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
}

// Meter counts usage per app. It is safe for concurrent use.
type Meter struct {
	apps sync.Map // app id -> *counters
}

type counters struct {
	published, delivered atomic.Uint64
	conns, peak          atomic.Int64
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

// Snapshot returns every app's usage.
func (m *Meter) Snapshot() []Usage {
	var out []Usage
	m.apps.Range(func(k, v any) bool {
		c := v.(*counters)
		out = append(out, Usage{AppID: k.(string), Published: c.published.Load(), Delivered: c.delivered.Load(),
			Connections: c.conns.Load(), PeakConnections: c.peak.Load()})
		return true
	})
	return out
}
