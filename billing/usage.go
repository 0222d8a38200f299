package billing

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Minute is one app's usage in one minute: on one node as a node flushes
// it, summed over the nodes as Minutes returns it.
type Minute struct {
	AppID     string
	Minute    time.Time // the minute's start, UTC
	Node      string    // empty in Minutes' answers
	Published uint64
	Delivered uint64
	// Connections is what the node had open when it last flushed in the
	// minute; summed over the nodes in Minutes' answers.
	Connections int64
}

// UsageStore keeps usage per app, minute and node. Every method is safe
// for concurrent use.
type UsageStore interface {
	// Add adds rows: published and delivered are added to what the node
	// already has for the minute, connections replaces it.
	Add(ctx context.Context, rows []Minute) error
	// Minutes returns appID's minutes in [since, until), oldest first,
	// summed over the nodes; minutes without usage are absent.
	Minutes(ctx context.Context, appID string, since, until time.Time) ([]Minute, error)
	// Prune deletes the minutes before before.
	Prune(ctx context.Context, before time.Time) error
}

type usageKey struct {
	app, node string
	minute    time.Time
}

// MemoryUsage is the embedded UsageStore.
type MemoryUsage struct {
	mu   sync.Mutex
	rows map[usageKey]*Minute
}

var _ UsageStore = (*MemoryUsage)(nil)

// NewMemoryUsage returns an empty store.
func NewMemoryUsage() *MemoryUsage { return &MemoryUsage{rows: map[usageKey]*Minute{}} }

func (m *MemoryUsage) Add(_ context.Context, rows []Minute) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range rows {
		k := usageKey{r.AppID, r.Node, r.Minute.UTC().Truncate(time.Minute)}
		cur := m.rows[k]
		if cur == nil {
			cur = &Minute{AppID: r.AppID, Minute: k.minute, Node: r.Node}
			m.rows[k] = cur
		}
		cur.Published += r.Published
		cur.Delivered += r.Delivered
		cur.Connections = r.Connections
	}
	return nil
}

func (m *MemoryUsage) Minutes(_ context.Context, appID string, since, until time.Time) ([]Minute, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sums := map[time.Time]*Minute{}
	for k, r := range m.rows {
		if k.app != appID || k.minute.Before(since) || !k.minute.Before(until) {
			continue
		}
		s := sums[k.minute]
		if s == nil {
			s = &Minute{AppID: appID, Minute: k.minute}
			sums[k.minute] = s
		}
		s.Published += r.Published
		s.Delivered += r.Delivered
		s.Connections += r.Connections
	}
	out := make([]Minute, 0, len(sums))
	for _, s := range sums {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Minute) int { return a.Minute.Compare(b.Minute) })
	return out, nil
}

func (m *MemoryUsage) Prune(_ context.Context, before time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.rows {
		if k.minute.Before(before) {
			delete(m.rows, k)
		}
	}
	return nil
}

// PostgresUsage keeps usage in the usage_minutes table.
type PostgresUsage struct{ pool *pgxpool.Pool }

var _ UsageStore = (*PostgresUsage)(nil)

// NewPostgresUsage returns a store on pool; the schema comes from
// migrations.
func NewPostgresUsage(pool *pgxpool.Pool) *PostgresUsage { return &PostgresUsage{pool: pool} }

func (s *PostgresUsage) Add(ctx context.Context, rows []Minute) error {
	batch := &pgx.Batch{}
	for _, r := range rows {
		batch.Queue(`INSERT INTO usage_minutes (app_id, minute, node, published, delivered, connections)
			VALUES ($1, date_trunc('minute', $2::timestamptz), $3, $4, $5, $6)
			ON CONFLICT (app_id, minute, node) DO UPDATE SET
				published = usage_minutes.published + excluded.published,
				delivered = usage_minutes.delivered + excluded.delivered,
				connections = excluded.connections`,
			r.AppID, r.Minute.UTC(), r.Node, int64(r.Published), int64(r.Delivered), r.Connections)
	}
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("billing: add usage: %w", err)
	}
	return nil
}

func (s *PostgresUsage) Minutes(ctx context.Context, appID string, since, until time.Time) ([]Minute, error) {
	rows, err := s.pool.Query(ctx, `SELECT minute, sum(published), sum(delivered), sum(connections)
		FROM usage_minutes WHERE app_id = $1 AND minute >= $2 AND minute < $3
		GROUP BY minute ORDER BY minute`, appID, since.UTC(), until.UTC())
	if err != nil {
		return nil, fmt.Errorf("billing: read usage: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Minute, error) {
		m := Minute{AppID: appID}
		var published, delivered, connections int64
		err := r.Scan(&m.Minute, &published, &delivered, &connections)
		m.Minute, m.Published, m.Delivered, m.Connections = m.Minute.UTC(), uint64(published), uint64(delivered), connections
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("billing: read usage: %w", err)
	}
	return out, nil
}

func (s *PostgresUsage) Prune(ctx context.Context, before time.Time) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM usage_minutes WHERE minute < $1`, before.UTC()); err != nil {
		return fmt.Errorf("billing: prune usage: %w", err)
	}
	return nil
}

// UsageRetention is how long minutes are kept: long enough for today's
// totals and the console's charts.
const UsageRetention = 48 * time.Hour

// Flusher adds a node's meter to a UsageStore every Interval: the
// publishes and deliveries since its last flush, and the connections open
// now, in the current minute's row. Usage thus reaches the store in
// batches, never per message.
type Flusher struct {
	Meter    *Meter
	Store    UsageStore
	Node     string
	Interval time.Duration // default 10 s
	Log      *slog.Logger

	last map[string]Usage // the meter as of the last flush, by app
}

// Run flushes until ctx ends, then flushes once more.
func (f *Flusher) Run(ctx context.Context) {
	if f.Interval <= 0 {
		f.Interval = 10 * time.Second
	}
	t := time.NewTicker(f.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			f.flush(flushCtx, time.Now())
			cancel()
			return
		case now := <-t.C:
			flushCtx, cancel := context.WithTimeout(ctx, f.Interval)
			f.flush(flushCtx, now)
			cancel()
		}
	}
}

// flush writes what changed since the last flush; a failed write is
// logged and its counts are tried again at the next flush.
func (f *Flusher) flush(ctx context.Context, now time.Time) {
	if f.last == nil {
		f.last = map[string]Usage{}
	}
	minute := now.UTC().Truncate(time.Minute)
	snapshot := f.Meter.Snapshot()
	rows := make([]Minute, 0, len(snapshot))
	for _, u := range snapshot {
		if u.AppID == "" {
			continue
		}
		prev := f.last[u.AppID]
		published, delivered := u.Published-prev.Published, u.Delivered-prev.Delivered
		if published == 0 && delivered == 0 && u.Connections == 0 && prev.Connections == 0 {
			continue
		}
		rows = append(rows, Minute{AppID: u.AppID, Minute: minute, Node: f.Node, Published: published, Delivered: delivered, Connections: u.Connections})
	}
	if len(rows) > 0 {
		if err := f.Store.Add(ctx, rows); err != nil {
			f.Log.Warn("usage flush failed; retrying at the next flush", "err", err)
			return
		}
	}
	for _, u := range snapshot {
		f.last[u.AppID] = u
	}
	if minute.Minute() == 0 && now.Second() < int(f.Interval.Seconds())+1 {
		if err := f.Store.Prune(ctx, now.Add(-UsageRetention)); err != nil {
			f.Log.Warn("usage prune failed", "err", err)
		}
	}
}
