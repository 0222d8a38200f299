package billing

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/dbtest"
	"github.com/heraldrt/herald/tenants"
)

func plan(t *testing.T, name string) Plan {
	t.Helper()
	p, err := NewMemoryPlans().Plan(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Quotas at 0 take the plan's value; every limit is cut to the ceiling;
// enterprise has no ceilings.
func TestPlanApply(t *testing.T) {
	settings := tenants.Settings{}
	if err := settings.Normalize(); err != nil {
		t.Fatal(err)
	}
	free := plan(t, "free").Apply(settings.Limits)
	if free.MaxConnections != 100 || free.PublishesPerSecond != 100 || free.NewConnectionsPerSecond != 20 {
		t.Errorf("free quotas: %+v", free)
	}
	if free.ClientEventsPerSecond != tenants.DefaultClientEventsPerSecond || free.MaxPayloadBytes != tenants.DefaultMaxPayloadBytes {
		t.Errorf("free defaults changed: %+v", free)
	}
	l := settings.Limits
	l.MaxConnections, l.ClientEventsPerSecond = 5, 50
	if got := plan(t, "pro").Apply(l); got.MaxConnections != 5 || got.ClientEventsPerSecond != 50 {
		t.Errorf("pro keeps values within its ceilings: %+v", got)
	}
	if got := plan(t, "free").Apply(l); got.ClientEventsPerSecond != 10 {
		t.Errorf("free cuts client events to its ceiling: %+v", got)
	}
	ent := plan(t, "enterprise").Apply(settings.Limits)
	if ent.MaxConnections != 0 || ent.PublishesPerSecond != 0 || ent != settings.Limits {
		t.Errorf("enterprise: %+v", ent)
	}
}

func TestPlanCheck(t *testing.T) {
	l := tenants.Limits{MaxConnections: 101}
	err := plan(t, "free").Check(l)
	if !errors.Is(err, tenants.ErrInvalid) || !strings.Contains(err.Error(), "max_connections 101 is over the free plan's ceiling of 100") {
		t.Errorf("free, 101 connections: %v", err)
	}
	if err := plan(t, "pro").Check(l); err != nil {
		t.Errorf("pro, 101 connections: %v", err)
	}
	if err := plan(t, "enterprise").Check(tenants.Limits{MaxConnections: tenants.LimitCeiling}); err != nil {
		t.Errorf("enterprise: %v", err)
	}
	if _, err := NewMemoryPlans().Plan(context.Background(), "platinum"); !errors.Is(err, ErrUnknownPlan) {
		t.Errorf("unknown plan: %v", err)
	}
	if p, err := NewMemoryPlans().Plan(context.Background(), ""); err != nil || p.Name != "free" {
		t.Errorf("no plan: %v, %v", p, err)
	}
}

// The plans table the migration creates holds exactly DefaultPlans, so the
// embedded mode and PostgreSQL agree.
func TestPostgresPlansMatchDefaults(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Migrated(t)
	s := NewPostgresPlans(pool, 0)
	got, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := NewMemoryPlans().List(ctx)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plans table:\n%+v\nwant DefaultPlans:\n%+v", got, want)
	}
	// A read failure serves the copy at hand.
	if _, err := s.Plan(ctx, "pro"); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	s.fetched = s.fetched.Add(-s.refresh)
	if p, err := s.Plan(ctx, "pro"); err != nil || p.Limits.MaxConnections != 10000 {
		t.Errorf("with the database gone: %+v, %v", p, err)
	}
}

// Apply runs on every connect and REST request: it must not allocate.
func TestPlanApplyAllocatesNothing(t *testing.T) {
	p := plan(t, "free")
	var l tenants.Limits
	if n := testing.AllocsPerRun(100, func() { l = p.Apply(l) }); n != 0 {
		t.Errorf("Apply allocates %v times", n)
	}
}
