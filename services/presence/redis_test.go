package presence

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldrt/herald/internal/redistest"
)

func TestRedisPresence(t *testing.T) {
	client := redistest.Client(t, redistest.URL(t))
	testPresence(t, func(t *testing.T) (Store, Store) {
		opts := RedisPresenceOptions{Prefix: redistest.Prefix(t, client)}
		return NewRedis(client, opts), NewRedis(client, opts)
	})
}

func TestRedisOccupancy(t *testing.T) {
	client := redistest.Client(t, redistest.URL(t))
	testOccupancy(t, func(t *testing.T) (Occupancy, Occupancy) {
		prefix := redistest.Prefix(t, client)
		return newOccupancy(t, client, prefix, "node-a", 0), newOccupancy(t, client, prefix, "node-b", 0)
	})
}

// A node that stops heartbeating loses its entries after TTL: they leave
// Members and Count at once, and Expire reports each user whose last entry
// lapsed to exactly one of its concurrent callers.
func TestRedisPresenceLapse(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t, redistest.URL(t))
	const ttl = 300 * time.Millisecond
	opts := RedisPresenceOptions{Prefix: redistest.Prefix(t, client), TTL: ttl}
	dying, alive := NewRedis(client, opts), NewRedis(client, opts)

	const channels = 10
	room := func(i int) string { return fmt.Sprint("presence-room", i) }
	alice, bob, carol := Member{UserID: "alice"}, Member{UserID: "bob"}, Member{UserID: "carol"}
	for i := range channels {
		expectJoin(t, dying, "app1", room(i), "d1", alice, 0, true)
		expectJoin(t, dying, "app1", room(i), "d2", bob, 0, true)
		expectJoin(t, alive, "app1", room(i), "a1", bob, 0, false)
		expectJoin(t, alive, "app1", room(i), "a2", carol, 0, true)
	}

	// Only the live node heartbeats, well within the TTL.
	stop := make(chan struct{})
	var beats sync.WaitGroup
	beats.Go(func() {
		for {
			for i := range channels {
				if _, err := alive.Heartbeat(ctx, "app1", room(i), map[string]Member{"a1": bob, "a2": carol}); err != nil {
					t.Error(err)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(ttl / 6):
			}
		}
	})
	defer func() { close(stop); beats.Wait() }()

	time.Sleep(ttl + 100*time.Millisecond)
	for i := range channels {
		expectMembers(t, alive, "app1", room(i), bob, carol)
	}
	// A user whose entries lapsed is still a member until Expire reports
	// it, so joining again is not a first join...
	expectJoin(t, alive, "app1", room(0), "a3", alice, 0, false)
	expectMembers(t, alive, "app1", room(0), alice, bob, carol)
	// ...and lapsed users do not count against the limit.
	expectJoin(t, alive, "app1", room(1), "a4", Member{UserID: "dave"}, 3, true)

	var mu sync.Mutex
	reported := map[string][]string{} // channel → users, over both callers
	var callers sync.WaitGroup
	for _, s := range []Store{dying, alive} {
		callers.Go(func() {
			for i := range channels {
				gone, err := s.Expire(ctx, "app1", room(i))
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				reported[room(i)] = append(reported[room(i)], gone...)
				mu.Unlock()
			}
		})
	}
	callers.Wait()
	for i := range channels {
		want := []string{"alice"}
		if i == 0 {
			want = nil // alice rejoined on a live connection
		}
		got := reported[room(i)]
		if !slices.Equal(got, want) {
			t.Errorf("%s: Expire reported %v over both callers, want %v once", room(i), got, want)
		}
		gone, err := alive.Expire(ctx, "app1", room(i))
		mustOK(t, err)
		if len(gone) != 0 {
			t.Errorf("%s: a second Expire reported %v", room(i), gone)
		}
	}
	expectMembers(t, alive, "app1", room(0), alice, bob, carol)
	expectLeave(t, alive, "app1", room(0), "a3", "alice", true)
	// A node that was only cut off comes back: its heartbeat records its
	// still-open connections again and reports the users who return, so
	// their member_added can follow the member_removed sent at expiry.
	back, err := dying.Heartbeat(ctx, "app1", room(2), map[string]Member{"d1": alice, "d2": bob})
	mustOK(t, err)
	if len(back) != 1 || back[0].UserID != "alice" {
		t.Errorf("returning users = %v, want alice (bob never left: a1 is his)", back)
	}
	expectMembers(t, alive, "app1", room(2), alice, bob, carol)
}

// A node that stops heartbeating drops out of the counts after TTL; one
// that closes drops out at once.
func TestRedisOccupancyLapse(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t, redistest.URL(t))
	// Long enough that the live nodes' heartbeats, every TTL/3, never
	// lapse on a loaded machine.
	const ttl = 600 * time.Millisecond
	prefix := redistest.Prefix(t, client)
	a := newOccupancy(t, client, prefix, "node-a", ttl)
	b := newOccupancy(t, client, prefix, "node-b", ttl)
	c := newOccupancy(t, client, prefix, "node-c", ttl)
	mustOK(t, a.Add(ctx, "app1", "room", 1))
	mustOK(t, b.Add(ctx, "app1", "room", 2))
	mustOK(t, c.Add(ctx, "app1", "room", 4))
	expectCount(t, a, "app1", "room", 7)

	b.stopHeartbeat()
	time.Sleep(ttl + 100*time.Millisecond)
	expectCount(t, a, "app1", "room", 5)
	expectCounts(t, c, "app1", "", map[string]int{"room": 5})
	if n, _ := client.Exists(ctx, b.countsKey("app1")).Result(); n != 0 {
		t.Error("the lapsed node's counts were not deleted")
	}

	mustOK(t, c.Close())
	expectCount(t, a, "app1", "room", 1)
	if err := c.Add(ctx, "app1", "room", 1); err == nil {
		t.Error("Add after Close: nil")
	}
}

// A node writes its counts back when Redis lost them.
func TestRedisOccupancyRestores(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t, redistest.URL(t))
	const ttl = 300 * time.Millisecond
	prefix := redistest.Prefix(t, client)
	a := newOccupancy(t, client, prefix, "node-a", ttl)
	mustOK(t, a.Add(ctx, "app1", "room", 2))
	mustOK(t, a.Add(ctx, "app1", "lobby", 1))
	keys, err := client.Keys(ctx, prefix+":*").Result()
	mustOK(t, err)
	mustOK(t, client.Del(ctx, keys...).Err())
	expectCount(t, a, "app1", "room", 0)
	deadline := time.Now().Add(5 * ttl)
	for {
		counts, err := a.Counts(ctx, "app1", "")
		mustOK(t, err)
		if counts["room"] == 2 && counts["lobby"] == 1 && len(counts) == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts not restored: %v", counts)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Every key the stores touch carries the deployment prefix and the app's
// hash tag (ISO-3), and every key they leave behind expires.
func TestRedisKeyScope(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t, redistest.URL(t))
	var cmds redistest.CommandLog
	client.AddHook(&cmds)
	prefix := redistest.Prefix(t, client)
	s := NewRedis(client, RedisPresenceOptions{Prefix: prefix, TTL: time.Minute})
	o := newOccupancy(t, client, prefix, "node:1", 300*time.Millisecond)
	conns := newOccupancyOpts(t, client, OccupancyOptions{Prefix: prefix, NodeID: "node:1", TTL: 300 * time.Millisecond, Kind: "conns"})
	for _, app := range []string{"app1", "app2"} {
		channel := "presence-a:b{c}"
		expectJoin(t, s, app, channel, "c1", Member{UserID: "u1", UserInfo: rawJSON("{}")}, 10, true)
		expectJoin(t, s, app, channel, "c2", Member{UserID: "u2"}, 10, true)
		_, err := s.Heartbeat(ctx, app, channel, map[string]Member{"c1": {UserID: "u1", UserInfo: rawJSON("{}")}})
		mustOK(t, err)
		expectLeave(t, s, app, channel, "c2", "u2", true)
		_, err = s.Expire(ctx, app, channel)
		mustOK(t, err)
		expectMembers(t, s, app, channel, Member{UserID: "u1", UserInfo: rawJSON("{}")})
		mustOK(t, o.Add(ctx, app, channel, 1))
		expectCounts(t, o, app, "", map[string]int{channel: 1})
		expectAcquire(t, o, app, channel, 2, true)
		expectAcquire(t, conns, app, "", 2, true)
		expectAcquire(t, conns, app, "user:u{1}", 1, true)
		expectAcquire(t, conns, app, "user:u{1}", 1, false)
		expectAcquire(t, conns, app, "user:u2", 1, true)
		mustOK(t, conns.Add(ctx, app, "user:u2", -1))
		expectCounts(t, conns, app, "", map[string]int{"": 1, "user:u{1}": 1})
	}
	time.Sleep(150 * time.Millisecond) // let the occupancy heartbeat run
	for _, bad := range []string{"", "a}b", "{a", "a:b"} {
		if _, err := s.Join(ctx, bad, "c", "c1", Member{UserID: "u"}, 0); err == nil {
			t.Errorf("Join accepted app id %q", bad)
		}
		if err := o.Add(ctx, bad, "c", 1); err == nil {
			t.Errorf("Add accepted app id %q", bad)
		}
		if _, err := conns.Acquire(ctx, bad, "c", 1); err == nil {
			t.Errorf("Acquire accepted app id %q", bad)
		}
	}

	keys := commandKeys(&cmds)
	if len(keys) < 20 {
		t.Fatalf("recorded only %d keys", len(keys))
	}
	for _, family := range []string{":occ:node:1", "}:occnodes", ":conns:node:1", "}:connsnodes"} {
		if !slices.ContainsFunc(keys, func(k string) bool { return strings.HasSuffix(k, family) }) {
			t.Errorf("no key ending %q recorded", family)
		}
	}
	for _, k := range keys {
		if !scoped(prefix, k) {
			t.Errorf("key %q lacks the prefix and app tag", k)
		}
	}
	var left []string
	iter := client.Scan(ctx, 0, prefix+":*", 100).Iterator()
	for iter.Next(ctx) {
		left = append(left, iter.Val())
	}
	mustOK(t, iter.Err())
	if len(left) == 0 {
		t.Fatal("no keys found")
	}
	for _, k := range left {
		if !scoped(prefix, k) {
			t.Errorf("key %q lacks the app tag", k)
		}
		if ttl, err := client.PTTL(ctx, k).Result(); err != nil || ttl <= 0 {
			t.Errorf("key %q does not expire (PTTL %v, %v)", k, ttl, err)
		}
	}
}

func TestNewRedisOccupancyNeedsNodeID(t *testing.T) {
	for _, id := range []string{"", "a{b}"} {
		if _, err := NewRedisOccupancy(nil, OccupancyOptions{NodeID: id}); err == nil {
			t.Errorf("node id %q accepted", id)
		}
	}
}

func TestNewRedisOccupancyChecksKind(t *testing.T) {
	for _, kind := range []string{"Conns", "conns1", "co-ns", "co:ns", "pres", strings.Repeat("a", 17)} {
		if _, err := NewRedisOccupancy(nil, OccupancyOptions{NodeID: "n", Kind: kind}); err == nil {
			t.Errorf("kind %q accepted", kind)
		}
	}
	for _, kind := range []string{"", "conns", strings.Repeat("a", 16)} {
		o, err := NewRedisOccupancy(nil, OccupancyOptions{NodeID: "n", Kind: kind})
		if err != nil {
			t.Errorf("kind %q refused: %v", kind, err)
			continue
		}
		mustOK(t, o.Close())
	}
}

// Concurrent Acquires spread over two nodes never overshoot the limit, also
// while the nodes are not yet listed in the app (each app here is new to
// both).
func TestRedisOccupancyAcquireAcrossNodes(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t, redistest.URL(t))
	prefix := redistest.Prefix(t, client)
	nodes := []*RedisOccupancy{
		newOccupancyOpts(t, client, OccupancyOptions{Prefix: prefix, NodeID: "node-a", Kind: "conns"}),
		newOccupancyOpts(t, client, OccupancyOptions{Prefix: prefix, NodeID: "node-b", Kind: "conns"}),
	}
	const tries, limit = 40, 5
	for round := range 5 {
		app := fmt.Sprint("app", round)
		start := make(chan struct{})
		var acquired, perNode [2]int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range tries {
			wg.Go(func() {
				<-start
				ok, err := nodes[i%2].Acquire(ctx, app, "", limit)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					acquired[i%2]++
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		if n := acquired[0] + acquired[1]; n != limit {
			t.Fatalf("%s: %d of %d Acquires succeeded with limit %d (per node %v)", app, n, tries, limit, acquired)
		}
		for i, o := range nodes {
			expectCount(t, o, app, "", limit)
			perNode[i] = remembered(o, app, "")
		}
		if perNode != acquired {
			t.Errorf("%s: the nodes remember %v slots, acquired %v", app, perNode, acquired)
		}
	}
	// A slot released on one node is free for the other.
	owner := 0
	if remembered(nodes[0], "app0", "") == 0 {
		owner = 1
	}
	mustOK(t, nodes[owner].Add(ctx, "app0", "", -1))
	expectAcquire(t, nodes[1-owner], "app0", "", limit, true)
	expectAcquire(t, nodes[owner], "app0", "", limit, false)
}

// remembered returns the node's own count of name in appID, from its
// memory.
func remembered(o *RedisOccupancy, appID, name string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.mirror[appID][name]
}

// The slots of a node that stopped heartbeating free up after TTL.
func TestRedisOccupancyAcquireLapse(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t, redistest.URL(t))
	// Long enough that the live node's heartbeats, every TTL/3, never
	// lapse on a loaded machine.
	const ttl = 600 * time.Millisecond
	prefix := redistest.Prefix(t, client)
	a := newOccupancy(t, client, prefix, "node-a", ttl)
	b := newOccupancy(t, client, prefix, "node-b", ttl)
	for range 3 {
		expectAcquire(t, a, "app1", "conns", 5, true)
	}
	for range 2 {
		expectAcquire(t, b, "app1", "conns", 5, true)
	}
	expectAcquire(t, a, "app1", "conns", 5, false)

	b.stopHeartbeat()
	time.Sleep(ttl + 100*time.Millisecond)
	expectAcquire(t, a, "app1", "conns", 5, true)
	expectAcquire(t, a, "app1", "conns", 5, true)
	expectAcquire(t, a, "app1", "conns", 5, false)
	expectCount(t, a, "app1", "conns", 5)
	if n, _ := client.Exists(ctx, b.countsKey("app1")).Result(); n != 0 {
		t.Error("the lapsed node's counts were not deleted")
	}
}

// When Redis loses a node's counts the limit holds again once they are
// back: the heartbeat writes them back, and an Acquire that finds them
// missing writes them back itself before judging the limit.
func TestRedisOccupancyAcquireRestores(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t, redistest.URL(t))
	const ttl = 300 * time.Millisecond
	prefix := redistest.Prefix(t, client)
	a := newOccupancy(t, client, prefix, "node-a", ttl)
	b := newOccupancy(t, client, prefix, "node-b", ttl)
	for range 5 {
		expectAcquire(t, a, "app1", "conns", 5, true)
	}

	mustOK(t, client.Del(ctx, a.countsKey("app1")).Err())
	deadline := time.Now().Add(5 * ttl)
	for {
		n, err := b.Count(ctx, "app1", "conns")
		mustOK(t, err)
		if n == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("count not restored by the heartbeat: %d", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	expectAcquire(t, b, "app1", "conns", 5, false)
	expectAcquire(t, a, "app1", "conns", 5, false)

	// Lost again, and then everything lost as in a restart without
	// persistence: the node's own Acquire does not wait for the heartbeat.
	mustOK(t, client.Del(ctx, a.countsKey("app1")).Err())
	expectAcquire(t, a, "app1", "conns", 5, false)
	expectCount(t, b, "app1", "conns", 5)
	keys, err := client.Keys(ctx, prefix+":*").Result()
	mustOK(t, err)
	mustOK(t, client.Del(ctx, keys...).Err())
	expectAcquire(t, a, "app1", "conns", 5, false)
	expectCount(t, b, "app1", "conns", 5)
	mustOK(t, a.Add(ctx, "app1", "conns", -1))
	expectAcquire(t, b, "app1", "conns", 5, true)
	expectAcquire(t, a, "app1", "conns", 5, false)
}

// Instances of different kinds on one prefix, even with one node id, keep
// apart keys and never see each other's counts.
func TestRedisOccupancyKinds(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t, redistest.URL(t))
	prefix := redistest.Prefix(t, client)
	occ := newOccupancy(t, client, prefix, "node-a", 0)
	conns := newOccupancyOpts(t, client, OccupancyOptions{Prefix: prefix, NodeID: "node-a", Kind: "conns"})
	mustOK(t, occ.Add(ctx, "app1", "room", 2))
	expectAcquire(t, conns, "app1", "", 2, true)
	expectAcquire(t, conns, "app1", "user:alice", 1, true)
	expectAcquire(t, conns, "app1", "room", 1, true)
	expectAcquire(t, occ, "app1", "room", 3, true)
	expectAcquire(t, occ, "app1", "room", 3, false)
	expectCounts(t, occ, "app1", "", map[string]int{"room": 3})
	expectCounts(t, conns, "app1", "", map[string]int{"": 1, "user:alice": 1, "room": 1})
	for _, key := range []string{"occ:node-a", "occnodes", "conns:node-a", "connsnodes"} {
		if n, err := client.Exists(ctx, prefix+":{app1}:"+key).Result(); err != nil || n != 1 {
			t.Errorf("key %s:{app1}:%s missing (%v)", prefix, key, err)
		}
	}
	mustOK(t, conns.Close())
	expectCount(t, occ, "app1", "room", 3)
	expectCount(t, conns, "app1", "", 0)
}

func rawJSON(s string) []byte { return []byte(s) }

func scoped(prefix, key string) bool {
	rest, ok := strings.CutPrefix(key, prefix+":{")
	if !ok {
		return false
	}
	app, _, ok := strings.Cut(rest, "}:")
	return ok && app != "" && !strings.ContainsAny(app, "{}:")
}

func newOccupancy(t *testing.T, client redis.UniversalClient, prefix, node string, ttl time.Duration) *RedisOccupancy {
	t.Helper()
	return newOccupancyOpts(t, client, OccupancyOptions{Prefix: prefix, NodeID: node, TTL: ttl})
}

func newOccupancyOpts(t *testing.T, client redis.UniversalClient, opts OccupancyOptions) *RedisOccupancy {
	t.Helper()
	o, err := NewRedisOccupancy(client, opts)
	mustOK(t, err)
	t.Cleanup(func() { o.Close() })
	return o
}

// commandKeys returns the keys of the commands in log. For scripts that is
// KEYS, plus the key prefix the occupancy reader builds keys from.
func commandKeys(log *redistest.CommandLog) []string {
	var out []string
	for _, args := range log.Commands() {
		switch strings.ToLower(args[0]) {
		case "time", "ping", "scan", "hello", "client":
		case "eval", "evalsha":
			n, _ := strconv.Atoi(args[2])
			out = append(out, args[3:3+n]...)
			if strings.HasSuffix(args[3], "nodes") { // an occupancy node list, of any kind
				out = append(out, args[3+n]+"node")
			}
		default:
			out = append(out, args[1])
		}
	}
	return out
}

// After Redis loses everything (a restart without persistence) the owning
// nodes' heartbeats rebuild the member lists.
func TestRedisPresence_HeartbeatRebuildsAfterDataLoss(t *testing.T) {
	client := redistest.Client(t, redistest.URL(t))
	ctx := context.Background()
	prefix := redistest.Prefix(t, client)
	a := NewRedis(client, RedisPresenceOptions{Prefix: prefix, TTL: time.Minute})
	alice := Member{UserID: "alice", UserInfo: rawJSON(`{"n":1}`)}
	expectJoin(t, a, "app1", "presence-x", "c1", alice, 0, true)
	keys, err := client.Keys(ctx, prefix+":*").Result()
	mustOK(t, err)
	mustOK(t, client.Del(ctx, keys...).Err())
	expectMembers(t, a, "app1", "presence-x")
	back, err := a.Heartbeat(ctx, "app1", "presence-x", map[string]Member{"c1": alice})
	mustOK(t, err)
	if len(back) != 1 || back[0].UserID != "alice" {
		t.Fatalf("returning users = %v, want alice", back)
	}
	expectMembers(t, a, "app1", "presence-x", alice)
}
