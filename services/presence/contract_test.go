package presence

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

func TestMemoryPresence(t *testing.T) {
	testPresence(t, func(t *testing.T) (Store, Store) {
		s := NewMemory()
		return s, s
	})
}

func TestMemoryOccupancy(t *testing.T) {
	testOccupancy(t, func(t *testing.T) (Occupancy, Occupancy) {
		o := NewMemoryOccupancy()
		return o, o
	})
}

// testPresence is the contract every Store keeps. newPair returns the
// stores of two nodes sharing one fresh backend (the memory store, being
// one node, returns itself twice).
func testPresence(t *testing.T, newPair func(t *testing.T) (Store, Store)) {
	ctx := context.Background()
	alice := Member{UserID: "alice", UserInfo: json.RawMessage(`{"name": "Alice", "tags":["ä","\u00e9"]}`)}
	bob := Member{UserID: "bob"}
	carol := Member{UserID: "carol", UserInfo: json.RawMessage(`"c"`)}

	t.Run("a user is one member however many connections", func(t *testing.T) {
		s, _ := newPair(t)
		expectJoin(t, s, "app1", "presence-room", "c1", alice, 0, true)
		expectJoin(t, s, "app1", "presence-room", "c2", Member{UserID: "alice", UserInfo: json.RawMessage(`"later"`)}, 0, false)
		expectJoin(t, s, "app1", "presence-room", "c3", bob, 0, true)
		expectMembers(t, s, "app1", "presence-room", alice, bob)
		expectLeave(t, s, "app1", "presence-room", "c1", "alice", false)
		expectMembers(t, s, "app1", "presence-room", alice, bob)
		expectLeave(t, s, "app1", "presence-room", "c2", "alice", true)
		expectMembers(t, s, "app1", "presence-room", bob)
		expectLeave(t, s, "app1", "presence-room", "c3", "bob", true)
		expectMembers(t, s, "app1", "presence-room")
	})

	t.Run("a connection joining twice is recorded once", func(t *testing.T) {
		s, _ := newPair(t)
		expectJoin(t, s, "app1", "presence-room", "c1", alice, 0, true)
		expectJoin(t, s, "app1", "presence-room", "c1", alice, 0, false)
		expectLeave(t, s, "app1", "presence-room", "c1", "alice", true)
		expectMembers(t, s, "app1", "presence-room")
	})

	t.Run("leaving what was never joined is not an error", func(t *testing.T) {
		s, _ := newPair(t)
		expectLeave(t, s, "app1", "presence-room", "c1", "alice", false)
		expectJoin(t, s, "app1", "presence-room", "c1", alice, 0, true)
		expectLeave(t, s, "app1", "presence-room", "c9", "alice", false)
		expectLeave(t, s, "app1", "presence-room", "c1", "bob", false)
		expectMembers(t, s, "app1", "presence-room", alice)
	})

	t.Run("a full channel refuses new users only", func(t *testing.T) {
		s, _ := newPair(t)
		expectJoin(t, s, "app1", "presence-room", "c1", alice, 2, true)
		expectJoin(t, s, "app1", "presence-room", "c2", bob, 2, true)
		if _, err := s.Join(ctx, "app1", "presence-room", "c3", carol, 2); !errors.Is(err, ErrFull) {
			t.Fatalf("third user joined a channel of 2: %v", err)
		}
		expectMembers(t, s, "app1", "presence-room", alice, bob)
		expectJoin(t, s, "app1", "presence-room", "c4", alice, 2, false)
		expectLeave(t, s, "app1", "presence-room", "c2", "bob", true)
		expectJoin(t, s, "app1", "presence-room", "c3", carol, 2, true)
		expectMembers(t, s, "app1", "presence-room", alice, carol)
	})

	t.Run("same channel name in two apps never crosses", func(t *testing.T) {
		s, _ := newPair(t)
		expectJoin(t, s, "app1", "presence-room", "c1", alice, 0, true)
		expectJoin(t, s, "app2", "presence-room", "c2", bob, 0, true)
		expectJoin(t, s, "app2", "presence-room", "c3", alice, 0, true)
		expectMembers(t, s, "app1", "presence-room", alice)
		expectMembers(t, s, "app2", "presence-room", alice, bob)
		expectLeave(t, s, "app2", "presence-room", "c1", "alice", false)
		expectMembers(t, s, "app1", "presence-room", alice)
		expectMembers(t, s, "app1", "presence-other")
	})

	t.Run("two nodes share the members", func(t *testing.T) {
		a, b := newPair(t)
		expectJoin(t, a, "app1", "presence-room", "a1", alice, 0, true)
		expectJoin(t, b, "app1", "presence-room", "b1", bob, 0, true)
		expectJoin(t, b, "app1", "presence-room", "b2", alice, 0, false)
		expectMembers(t, a, "app1", "presence-room", alice, bob)
		expectMembers(t, b, "app1", "presence-room", alice, bob)
		if _, err := b.Join(ctx, "app1", "presence-room", "b3", carol, 2); !errors.Is(err, ErrFull) {
			t.Fatalf("the limit ignored the other node's members: %v", err)
		}
		expectLeave(t, a, "app1", "presence-room", "a1", "alice", false)
		expectLeave(t, b, "app1", "presence-room", "b2", "alice", true)
		expectMembers(t, a, "app1", "presence-room", bob)
	})

	t.Run("live entries survive heartbeat and expiry", func(t *testing.T) {
		s, _ := newPair(t)
		expectJoin(t, s, "app1", "presence-room", "c1", alice, 0, true)
		back, err := s.Heartbeat(ctx, "app1", "presence-room", map[string]Member{"c1": alice})
		mustOK(t, err)
		if len(back) != 0 {
			t.Fatalf("Heartbeat of a live entry reported %v as returning", back)
		}
		_, err = s.Heartbeat(ctx, "app1", "presence-room", nil)
		mustOK(t, err)
		gone, err := s.Expire(ctx, "app1", "presence-room")
		mustOK(t, err)
		if len(gone) != 0 {
			t.Fatalf("Expire removed live users %v", gone)
		}
		expectMembers(t, s, "app1", "presence-room", alice)
	})
}

// testOccupancy is the contract every Occupancy keeps. newPair returns the
// counters of two nodes sharing one fresh backend (the memory counter
// returns itself twice).
func testOccupancy(t *testing.T, newPair func(t *testing.T) (Occupancy, Occupancy)) {
	ctx := context.Background()

	t.Run("counts follow subscribes and unsubscribes", func(t *testing.T) {
		o, _ := newPair(t)
		mustOK(t, o.Add(ctx, "app1", "presence-room", 1))
		mustOK(t, o.Add(ctx, "app1", "presence-room", 1))
		mustOK(t, o.Add(ctx, "app1", "private-x", 1))
		mustOK(t, o.Add(ctx, "app1", "news", 1))
		expectCount(t, o, "app1", "presence-room", 2)
		expectCounts(t, o, "app1", "", map[string]int{"presence-room": 2, "private-x": 1, "news": 1})
		expectCounts(t, o, "app1", "pr", map[string]int{"presence-room": 2, "private-x": 1})
		expectCounts(t, o, "app1", "presence-", map[string]int{"presence-room": 2})
		mustOK(t, o.Add(ctx, "app1", "private-x", -1))
		expectCount(t, o, "app1", "private-x", 0)
		expectCounts(t, o, "app1", "pr", map[string]int{"presence-room": 2})
		// A count never goes below zero.
		mustOK(t, o.Add(ctx, "app1", "news", -2))
		mustOK(t, o.Add(ctx, "app1", "news", 1))
		expectCount(t, o, "app1", "news", 1)
	})

	t.Run("same channel name in two apps never crosses", func(t *testing.T) {
		o, _ := newPair(t)
		mustOK(t, o.Add(ctx, "app1", "room", 1))
		mustOK(t, o.Add(ctx, "app2", "room", 3))
		expectCount(t, o, "app1", "room", 1)
		expectCounts(t, o, "app2", "", map[string]int{"room": 3})
		expectCounts(t, o, "app3", "", map[string]int{})
	})

	t.Run("counts are summed across nodes", func(t *testing.T) {
		a, b := newPair(t)
		mustOK(t, a.Add(ctx, "app1", "room", 1))
		mustOK(t, b.Add(ctx, "app1", "room", 2))
		mustOK(t, b.Add(ctx, "app1", "lobby", 1))
		expectCount(t, a, "app1", "room", 3)
		expectCounts(t, b, "app1", "", map[string]int{"room": 3, "lobby": 1})
		mustOK(t, b.Add(ctx, "app1", "room", -2))
		expectCount(t, a, "app1", "room", 1)
	})

	t.Run("acquire keeps within the limit and release frees a slot", func(t *testing.T) {
		o, _ := newPair(t)
		for range 3 {
			expectAcquire(t, o, "app1", "conns", 3, true)
		}
		expectAcquire(t, o, "app1", "conns", 3, false)
		expectCount(t, o, "app1", "conns", 3)
		mustOK(t, o.Add(ctx, "app1", "conns", -1))
		expectCount(t, o, "app1", "conns", 2)
		expectAcquire(t, o, "app1", "conns", 3, true)
		expectAcquire(t, o, "app1", "conns", 3, false)
		// A lowered limit refuses until enough are released.
		expectAcquire(t, o, "app1", "conns", 2, false)
		mustOK(t, o.Add(ctx, "app1", "conns", -2))
		expectAcquire(t, o, "app1", "conns", 2, true)
		expectCount(t, o, "app1", "conns", 2)
	})

	t.Run("acquire with no limit always succeeds", func(t *testing.T) {
		o, _ := newPair(t)
		for _, limit := range []int{0, -1} {
			for range 5 {
				expectAcquire(t, o, "app1", "conns", limit, true)
			}
		}
		expectCount(t, o, "app1", "conns", 10)
		expectAcquire(t, o, "app1", "conns", 10, false)
	})

	t.Run("acquire counts each name of each app apart", func(t *testing.T) {
		o, _ := newPair(t)
		expectAcquire(t, o, "app1", "user:alice", 1, true)
		expectAcquire(t, o, "app1", "user:alice", 1, false)
		expectAcquire(t, o, "app1", "user:bob", 1, true)
		expectAcquire(t, o, "app2", "user:alice", 1, true)
		expectAcquire(t, o, "app2", "user:alice", 1, false)
		expectCounts(t, o, "app1", "user:", map[string]int{"user:alice": 1, "user:bob": 1})
		expectCounts(t, o, "app2", "", map[string]int{"user:alice": 1})
	})

	t.Run("by node", func(t *testing.T) {
		a, b := newPair(t)
		mustOK(t, a.Add(ctx, "app1", "conns", 2))
		mustOK(t, b.Add(ctx, "app1", "conns", 1))
		mustOK(t, b.Add(ctx, "app2", "conns", 5))
		got, err := a.ByNode(ctx, "app1", "conns")
		mustOK(t, err)
		sum := 0
		for node, n := range got {
			if node == "" || n <= 0 {
				t.Errorf("ByNode entry %q: %d", node, n)
			}
			sum += n
		}
		if sum != 3 {
			t.Errorf("ByNode %v sums to %d, want 3", got, sum)
		}
		if a != b && len(got) != 2 {
			t.Errorf("two nodes: ByNode %v, want an entry each", got)
		}
		if got, _ := a.ByNode(ctx, "app3", "conns"); len(got) != 0 {
			t.Errorf("an app without connections: %v", got)
		}
	})

	t.Run("acquire counts the other nodes", func(t *testing.T) {
		a, b := newPair(t)
		expectAcquire(t, a, "app1", "conns", 3, true)
		mustOK(t, b.Add(ctx, "app1", "conns", 1))
		expectAcquire(t, b, "app1", "conns", 3, true)
		expectAcquire(t, a, "app1", "conns", 3, false)
		expectAcquire(t, b, "app1", "conns", 3, false)
		mustOK(t, b.Add(ctx, "app1", "conns", -1))
		expectAcquire(t, a, "app1", "conns", 3, true)
		expectCount(t, b, "app1", "conns", 3)
	})
}

func expectAcquire(t *testing.T, o Occupancy, app, name string, limit int, want bool) {
	t.Helper()
	got, err := o.Acquire(context.Background(), app, name, limit)
	mustOK(t, err)
	if got != want {
		t.Fatalf("Acquire(%s, %s, %d) = %t, want %t", app, name, limit, got, want)
	}
}

func expectJoin(t *testing.T, s Store, app, channel, conn string, m Member, limit int, first bool) {
	t.Helper()
	got, err := s.Join(context.Background(), app, channel, conn, m, limit)
	mustOK(t, err)
	if got != first {
		t.Fatalf("Join(%s, %s, %s, %s) first = %t, want %t", app, channel, conn, m.UserID, got, first)
	}
}

func expectLeave(t *testing.T, s Store, app, channel, conn, user string, last bool) {
	t.Helper()
	got, err := s.Leave(context.Background(), app, channel, conn, user)
	mustOK(t, err)
	if got != last {
		t.Fatalf("Leave(%s, %s, %s, %s) last = %t, want %t", app, channel, conn, user, got, last)
	}
}

// expectMembers checks Members and Count; want is in user id order.
func expectMembers(t *testing.T, s Store, app, channel string, want ...Member) {
	t.Helper()
	ctx := context.Background()
	got, err := s.Members(ctx, app, channel)
	mustOK(t, err)
	if !slices.EqualFunc(got, want, func(a, b Member) bool {
		return a.UserID == b.UserID && string(a.UserInfo) == string(b.UserInfo) && (a.UserInfo == nil) == (b.UserInfo == nil)
	}) {
		t.Fatalf("Members(%s, %s) = %s, want %s", app, channel, members(got), members(want))
	}
	n, err := s.Count(ctx, app, channel)
	mustOK(t, err)
	if n != len(want) {
		t.Fatalf("Count(%s, %s) = %d, want %d", app, channel, n, len(want))
	}
}

func members(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.UserID + "=" + string(m.UserInfo)
		if m.UserInfo == nil {
			out[i] = m.UserID + "=<nil>"
		}
	}
	return out
}

func expectCount(t *testing.T, o Occupancy, app, channel string, want int) {
	t.Helper()
	n, err := o.Count(context.Background(), app, channel)
	mustOK(t, err)
	if n != want {
		t.Fatalf("Count(%s, %s) = %d, want %d", app, channel, n, want)
	}
}

func expectCounts(t *testing.T, o Occupancy, app, prefix string, want map[string]int) {
	t.Helper()
	got, err := o.Counts(context.Background(), app, prefix)
	mustOK(t, err)
	if len(got) != len(want) {
		t.Fatalf("Counts(%s, %q) = %v, want %v", app, prefix, got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("Counts(%s, %q) = %v, want %v", app, prefix, got, want)
		}
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
