package billing

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/dbtest"
)

func testUsageStore(t *testing.T, s UsageStore) {
	ctx := context.Background()
	m0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	m1 := m0.Add(time.Minute)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Add(ctx, []Minute{
		{AppID: "1", Minute: m0.Add(5 * time.Second), Node: "a", Published: 3, Delivered: 30, Connections: 10},
		{AppID: "1", Minute: m0, Node: "b", Published: 1, Delivered: 2, Connections: 4},
		{AppID: "2", Minute: m0, Node: "a", Published: 100},
	}))
	must(s.Add(ctx, []Minute{{AppID: "1", Minute: m0, Node: "a", Published: 2, Delivered: 5, Connections: 12}}))
	must(s.Add(ctx, []Minute{{AppID: "1", Minute: m1, Node: "a", Published: 7, Connections: 11}}))
	got, err := s.Minutes(ctx, "1", m0, m1.Add(time.Minute))
	must(err)
	if len(got) != 2 {
		t.Fatalf("minutes: %+v", got)
	}
	if g := got[0]; !g.Minute.Equal(m0) || g.Published != 6 || g.Delivered != 37 || g.Connections != 16 {
		t.Errorf("first minute (two nodes, two flushes of a): %+v", g)
	}
	if g := got[1]; !g.Minute.Equal(m1) || g.Published != 7 || g.Connections != 11 {
		t.Errorf("second minute: %+v", g)
	}
	if got, _ := s.Minutes(ctx, "1", m1, m1.Add(time.Minute)); len(got) != 1 {
		t.Errorf("range: %+v", got)
	}
	must(s.Prune(ctx, m1))
	if got, _ := s.Minutes(ctx, "1", m0, m1.Add(time.Minute)); len(got) != 1 || !got[0].Minute.Equal(m1) {
		t.Errorf("after prune: %+v", got)
	}
	if got, _ := s.Minutes(ctx, "2", m0, m1); len(got) != 0 {
		t.Errorf("app 2 after prune: %+v", got)
	}
}

func TestMemoryUsage(t *testing.T) { testUsageStore(t, NewMemoryUsage()) }

func TestPostgresUsage(t *testing.T) {
	testUsageStore(t, NewPostgresUsage(dbtest.Migrated(t)))
}

// The flusher writes what changed since its last flush, so counts are
// never added twice, and the connections open at each flush.
func TestFlusher(t *testing.T) {
	meter := &Meter{}
	store := NewMemoryUsage()
	f := &Flusher{Meter: meter, Store: store, Node: "n1", Interval: time.Hour, Log: slog.New(slog.DiscardHandler)}
	now := time.Date(2026, 11, 23, 10, 0, 30, 0, time.UTC)
	meter.Published("1", 5)
	meter.Delivered("1", 50)
	meter.Connected("1")
	f.flush(context.Background(), now)
	f.flush(context.Background(), now.Add(5*time.Second))
	meter.Published("1", 2)
	f.flush(context.Background(), now.Add(40*time.Second))
	got, _ := store.Minutes(context.Background(), "1", now.Add(-time.Hour), now.Add(time.Hour))
	if len(got) != 2 || got[0].Published != 5 || got[0].Delivered != 50 || got[0].Connections != 1 || got[1].Published != 2 {
		t.Errorf("flushed minutes: %+v", got)
	}
}
