package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldrt/herald/tenants"
)

// ErrUnknownPlan is returned for a plan name that no plan has.
var ErrUnknownPlan = errors.New("unknown plan")

// Plan bounds the limits of its tenants' apps. Each field of Limits is a
// ceiling, 0 meaning none; the app quotas left at 0 (max_connections,
// new_connections_per_second, publishes_per_second) take the plan's value.
type Plan struct {
	Name   string         `json:"name"`
	Limits tenants.Limits `json:"limits"`
}

// DefaultPlans are the plans a fresh deployment has, in memory and as the
// rows the migration inserts.
func DefaultPlans() []Plan {
	return []Plan{
		{Name: "free", Limits: tenants.Limits{
			MaxConnections: 100, NewConnectionsPerSecond: 20, PublishesPerSecond: 100,
			MaxConnectionsPerUser: 100, SubscriptionsPerSecond: 20, MaxPayloadBytes: 10240,
			MaxChannelsPerEvent: 100, MaxBatchEvents: 10, ClientEventsPerSecond: 10,
			MaxChannelsPerConnection: 100, MaxPresenceMembers: 100,
		}},
		{Name: "pro", Limits: tenants.Limits{
			MaxConnections: 10000, NewConnectionsPerSecond: 500, PublishesPerSecond: 2000,
			MaxConnectionsPerUser: 1000, SubscriptionsPerSecond: 200, MaxPayloadBytes: 65536,
			MaxChannelsPerEvent: 100, MaxBatchEvents: 10, ClientEventsPerSecond: 100,
			MaxChannelsPerConnection: 1000, MaxPresenceMembers: 1000,
		}},
		{Name: "enterprise"},
	}
}

// quotaFields are the limits whose 0 means "the plan's value" rather than
// a default of their own.
var quotaFields = []string{"max_connections", "new_connections_per_second", "publishes_per_second"}

// Apply returns the limits an app actually gets under the plan: quotas
// left at 0 take the plan's value and every limit is cut to the plan's
// ceiling. A result of 0 means unlimited.
func (p Plan) Apply(l tenants.Limits) tenants.Limits {
	for i := range tenants.LimitSpecs {
		spec := &tenants.LimitSpecs[i]
		v, c := l.At(i), *p.Limits.At(i)
		switch {
		case *v == 0 && slices.Contains(quotaFields, spec.Name):
			*v = c
		case c > 0 && (*v > c || *v == 0):
			*v = c
		}
	}
	return l
}

// Check refuses limits above the plan's ceilings, naming the first one.
func (p Plan) Check(l tenants.Limits) error {
	for i := range tenants.LimitSpecs {
		spec := &tenants.LimitSpecs[i]
		if v, c := *l.At(i), *p.Limits.At(i); c > 0 && v > c {
			return fmt.Errorf("%w: settings.limits.%s %d is over the %s plan's ceiling of %d", tenants.ErrInvalid, spec.Name, v, p.Name, c)
		}
	}
	return nil
}

// Plans looks plans up by name. Implementations are safe for concurrent
// use.
type Plans interface {
	// Plan returns the named plan; an empty name means "free". An unknown
	// name returns ErrUnknownPlan.
	Plan(ctx context.Context, name string) (Plan, error)
	// List returns every plan, ordered by name.
	List(ctx context.Context) ([]Plan, error)
}

// MemoryPlans serves DefaultPlans: the embedded deployment's plans.
type MemoryPlans struct{ plans []Plan }

var _ Plans = (*MemoryPlans)(nil)

// NewMemoryPlans returns DefaultPlans.
func NewMemoryPlans() *MemoryPlans { return &MemoryPlans{plans: DefaultPlans()} }

func (m *MemoryPlans) Plan(_ context.Context, name string) (Plan, error) { return find(m.plans, name) }

func (m *MemoryPlans) List(context.Context) ([]Plan, error) { return sorted(m.plans), nil }

func find(plans []Plan, name string) (Plan, error) {
	if name == "" {
		name = "free"
	}
	for _, p := range plans {
		if p.Name == name {
			return p, nil
		}
	}
	return Plan{}, fmt.Errorf("%w %q", ErrUnknownPlan, name)
}

func sorted(plans []Plan) []Plan {
	out := slices.Clone(plans)
	slices.SortFunc(out, func(a, b Plan) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// PostgresPlans reads the plans table. Plans change rarely (an operator
// edits the table), so the table is read at most once per refresh period
// and served from memory in between; the connect and subscribe paths never
// wait for the database for a plan.
type PostgresPlans struct {
	pool    *pgxpool.Pool
	refresh time.Duration

	mu      sync.Mutex
	plans   []Plan
	fetched time.Time
}

var _ Plans = (*PostgresPlans)(nil)

// NewPostgresPlans reads plans from pool, re-reading them every refresh
// (default 30 s).
func NewPostgresPlans(pool *pgxpool.Pool, refresh time.Duration) *PostgresPlans {
	if refresh <= 0 {
		refresh = 30 * time.Second
	}
	return &PostgresPlans{pool: pool, refresh: refresh}
}

func (s *PostgresPlans) Plan(ctx context.Context, name string) (Plan, error) {
	plans, err := s.load(ctx)
	if err != nil {
		return Plan{}, err
	}
	return find(plans, name)
}

func (s *PostgresPlans) List(ctx context.Context) ([]Plan, error) {
	plans, err := s.load(ctx)
	return sorted(plans), err
}

// load returns the cached plans, re-reading the table when they are older
// than the refresh period. If the re-read fails, the stale copy is served
// rather than failing connections over a plan that rarely changes.
func (s *PostgresPlans) load(ctx context.Context) ([]Plan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plans != nil && time.Since(s.fetched) < s.refresh {
		return s.plans, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT name, limits FROM plans ORDER BY name`)
	if err == nil {
		var plans []Plan
		plans, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Plan, error) {
			var (
				p   Plan
				raw []byte
			)
			if err := r.Scan(&p.Name, &raw); err != nil {
				return p, err
			}
			return p, json.Unmarshal(raw, &p.Limits)
		})
		if err == nil {
			s.plans, s.fetched = plans, time.Now()
			return plans, nil
		}
	}
	if s.plans != nil {
		return s.plans, nil
	}
	return nil, fmt.Errorf("billing: read plans: %w", err)
}
