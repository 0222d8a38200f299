package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldrt/herald/internal/redistest"
)

// limiterBackend builds Limiters on one kind of store.
type limiterBackend struct {
	name string
	new  func(t *testing.T) testLimiter
}

// testLimiter is a Limiter with what tests check it by: on Redis, log
// records its commands, whose keys start with prefix and a colon; on
// memory, both are unset.
type testLimiter struct {
	*Limiter
	log    *redistest.CommandLog
	prefix string
}

// limiterBackends are memory and, when the test Redis is configured, Redis
// under a fresh prefix per Limiter.
var limiterBackends = []limiterBackend{
	{"memory", func(t *testing.T) testLimiter {
		return testLimiter{Limiter: NewLimiter(LimiterOptions{})}
	}},
	{"redis", func(t *testing.T) testLimiter {
		client := redistest.Client(t, redistest.URL(t))
		log := &redistest.CommandLog{}
		client.AddHook(log)
		prefix := redistest.Prefix(t, client)
		return testLimiter{NewLimiter(LimiterOptions{Redis: client, Prefix: prefix}), log, prefix}
	}},
}

// take is Take for tests, which fails on an error.
func take(t *testing.T, l *Limiter, scope, bucket, subject string, rate Rate, n int64) Verdict {
	t.Helper()
	v, err := l.Take(context.Background(), scope, bucket, subject, rate, n)
	if err != nil {
		t.Fatalf("Take(%q, %q, %q): %v", scope, bucket, subject, err)
	}
	return v
}

// TestLimiter_Contract runs the behaviour every store must share.
func TestLimiter_Contract(t *testing.T) {
	for _, b := range limiterBackends {
		t.Run(b.name, func(t *testing.T) { testLimiterContract(t, b) })
	}
}

func testLimiterContract(t *testing.T, b limiterBackend) {
	t.Run("limit is exact", func(t *testing.T) {
		l := b.new(t).Limiter
		rate := PerMinute(5)
		for i := range int64(5) {
			before := time.Now()
			v := take(t, l, "app1", "publish", "app", rate, 1)
			if !v.Allowed || v.Limit != 5 || v.Remaining != 4-i {
				t.Fatalf("take %d: %+v, want allowed with limit 5 and %d remaining", i+1, v, 4-i)
			}
			if !v.Reset.After(before) || v.Reset.After(before.Add(rate.Period+time.Second)) {
				t.Fatalf("take %d: reset %v is not within a period (and a second) of %v", i+1, v.Reset, before)
			}
		}
		now := time.Now()
		v := take(t, l, "app1", "publish", "app", rate, 1)
		if v.Allowed || v.Limit != 5 || v.Remaining != 0 {
			t.Fatalf("take 6: %+v, want refused with limit 5 and none remaining", v)
		}
		if ra := v.RetryAfter(now); ra < time.Second || ra > rate.Period+time.Second || ra%time.Second != 0 {
			t.Fatalf("RetryAfter = %v, want whole seconds in [1s, period+1s]", ra)
		}
	})

	t.Run("n events count n", func(t *testing.T) {
		l := b.new(t).Limiter
		rate := PerMinute(10)
		steps := []struct {
			n         int64
			allowed   bool
			remaining int64
		}{
			{4, true, 6},
			{6, true, 0},
			{1, false, 0},
		}
		for i, s := range steps {
			v := take(t, l, "app1", "publish", "app", rate, s.n)
			if v.Allowed != s.allowed || v.Remaining != s.remaining {
				t.Fatalf("step %d (n=%d): %+v, want allowed=%v remaining=%d", i, s.n, v, s.allowed, s.remaining)
			}
		}
	})

	t.Run("refused events still count", func(t *testing.T) {
		l := b.new(t).Limiter
		rate := PerMinute(5)
		if v := take(t, l, "app1", "publish", "app", rate, 3); !v.Allowed || v.Remaining != 2 {
			t.Fatalf("3 of 5: %+v", v)
		}
		if v := take(t, l, "app1", "publish", "app", rate, 3); v.Allowed {
			t.Fatalf("3 more of 5 allowed: %+v", v)
		}
		// Documented: the refused 3 used up the 2 that were left.
		if v := take(t, l, "app1", "publish", "app", rate, 1); v.Allowed {
			t.Fatalf("1 after a refusal allowed: %+v", v)
		}
	})

	t.Run("n below one counts one", func(t *testing.T) {
		l := b.new(t).Limiter
		rate := PerMinute(3)
		for _, n := range []int64{0, -5, 1} {
			if v := take(t, l, "app1", "publish", "app", rate, n); !v.Allowed {
				t.Fatalf("n=%d refused: %+v", n, v)
			}
		}
		if v := take(t, l, "app1", "publish", "app", rate, 1); v.Allowed || v.Remaining != 0 {
			t.Fatalf("fourth event allowed: %+v", v)
		}
	})

	t.Run("window resets", func(t *testing.T) {
		l := b.new(t).Limiter
		rate := Rate{Limit: 2, Period: time.Second}
		take(t, l, "app1", "client-event", "u:alice", rate, 2)
		if v := take(t, l, "app1", "client-event", "u:alice", rate, 1); v.Allowed {
			t.Fatalf("third event in a window of 2 allowed: %+v", v)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !take(t, l, "app1", "client-event", "u:alice", rate, 1).Allowed {
			if time.Now().After(deadline) {
				t.Fatal("the window never reset")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("limit at or below zero is unlimited", func(t *testing.T) {
		tl := b.new(t)
		l := tl.Limiter
		for _, rate := range []Rate{{}, {Limit: 0, Period: time.Second}, {Limit: -1, Period: time.Minute}} {
			for range 100 {
				if v := take(t, l, "app1", "publish", "app", rate, 7); !v.Allowed || v.Limit != 0 || !v.Reset.IsZero() {
					t.Fatalf("rate %+v: %+v, want allowed without limit or reset", rate, v)
				}
			}
		}
		if tl.log != nil && len(tl.log.Commands()) != 0 {
			t.Fatalf("unlimited takes sent Redis %v", tl.log.Commands())
		}
	})
}

// TestLimiter_TwoNodesShareRedis proves that two nodes on one Redis count
// into the same bucket.
func TestLimiter_TwoNodesShareRedis(t *testing.T) {
	url := redistest.URL(t)
	c1, c2 := redistest.Client(t, url), redistest.Client(t, url)
	prefix := redistest.Prefix(t, c1)
	nodes := []*Limiter{
		NewLimiter(LimiterOptions{Redis: c1, Prefix: prefix}),
		NewLimiter(LimiterOptions{Redis: c2, Prefix: prefix}),
	}
	allowed := 0
	for i := range 12 {
		if take(t, nodes[i%2], "app1", "publish", "app", PerMinute(5), 1).Allowed {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("two nodes allowed %d events in total, want 5", allowed)
	}
}

// TestLimiter_Isolation_ISO4 proves that buckets of different apps, of the
// global scope, of different buckets and of different subjects never share
// a count, and that every key is scoped by prefix and app.
func TestLimiter_Isolation_ISO4(t *testing.T) {
	for _, b := range limiterBackends {
		t.Run(b.name, func(t *testing.T) {
			tl := b.new(t)
			l := tl.Limiter
			rate := PerMinute(3)
			take(t, l, "appa", "publish", "app", rate, 3)
			if v := take(t, l, "appa", "publish", "app", rate, 1); v.Allowed {
				t.Fatalf("app A's exhausted bucket allowed: %+v", v)
			}
			untouched := []struct{ scope, bucket, subject string }{
				{"appb", "publish", "app"},
				{GlobalScope, "publish", "app"},
				{"appa", "client-event", "app"},
				{"appa", "publish", "u:app"},
			}
			for _, u := range untouched {
				if v := take(t, l, u.scope, u.bucket, u.subject, rate, 3); !v.Allowed || v.Remaining != 0 {
					t.Errorf("%v after exhausting app A: %+v, want all 3 allowed", u, v)
				}
			}
			if tl.log == nil {
				return
			}
			prefix := tl.prefix
			for _, key := range commandKeys(t, tl.log) {
				if !strings.HasPrefix(key, prefix+":{appa}:rl:") && !strings.HasPrefix(key, prefix+":{appb}:rl:") &&
					!strings.HasPrefix(key, prefix+":{global}:rl:") {
					t.Errorf("key %q is not under %s:{<scope>}:rl:", key, prefix)
				}
			}
		})
	}
}

// commandKeys returns the key of every recorded script call, failing on
// any command that is neither a script call nor part of the connection
// handshake, so that no key goes unchecked.
func commandKeys(t *testing.T, log *redistest.CommandLog) []string {
	t.Helper()
	var keys []string
	for _, cmd := range log.Commands() {
		switch name := strings.ToLower(cmd[0]); {
		case name == "hello" || name == "client":
		case (name == "evalsha" || name == "eval") && len(cmd) >= 4 && cmd[2] == "1":
			keys = append(keys, cmd[3])
		default:
			t.Errorf("unexpected command %q", cmd)
		}
	}
	if len(keys) == 0 {
		t.Error("no command was recorded")
	}
	return keys
}

// TestLimiter_KeyLayout checks the exact keys sent to Redis, with a chosen
// prefix and with the default one.
func TestLimiter_KeyLayout(t *testing.T) {
	url := redistest.URL(t)
	cases := []struct{ scope, bucket, subject, key string }{
		{"123", "publish", "app", "{123}:rl:publish:app"},
		{"123", "client-event", "u:alice", "{123}:rl:client-event:u:alice"},
		{GlobalScope, "ws-ip", "127.0.0.2", "{global}:rl:ws-ip:127.0.0.2"},
		{GlobalScope, "ws-ip", "::1", "{global}:rl:ws-ip:::1"},
	}
	for _, prefix := range []string{"", "chosen"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			client := redistest.Client(t, url)
			log := &redistest.CommandLog{}
			client.AddHook(log)
			want := prefix
			if prefix == "" {
				want = "herald"
			} else {
				prefix = redistest.Prefix(t, client)
				want = prefix
			}
			l := NewLimiter(LimiterOptions{Redis: client, Prefix: prefix})
			// The default prefix is shared with real deployments: delete
			// exactly the keys this test makes.
			t.Cleanup(func() {
				for _, c := range cases {
					client.Del(context.Background(), want+":"+c.key)
				}
			})
			for _, c := range cases {
				take(t, l, c.scope, c.bucket, c.subject, PerMinute(1), 1)
			}
			keys := commandKeys(t, log)
			if len(keys) != len(cases) {
				t.Fatalf("recorded keys %q, want one per take", keys)
			}
			for i, c := range cases {
				if keys[i] != want+":"+c.key {
					t.Errorf("key %q, want %q", keys[i], want+":"+c.key)
				}
			}
		})
	}
}

// TestLimitKey_Subjects proves that subjects which could collide or escape
// their place map to distinct, well-formed keys.
func TestLimitKey_Subjects(t *testing.T) {
	long := strings.Repeat("a", 10000)
	subjects := []string{
		"a:b", "a", "b", "a:", ":b", "", " ", "a b",
		"}", "{", "{123}", "x{y}z", "a}:rl:publish:b",
		"a\nb", "a\r\nb", "a\x00b", "*", "a?", "[ab]",
		strings.Repeat("x", maxPlainSubject), strings.Repeat("x", maxPlainSubject+1),
		long, long + "b",
		"alice@example.com", "192.168.0.1", "2001:db8::1", "123.456",
		"é", "~abc", safeSubject(long), safeSubject("a b"),
	}
	wellFormed := regexp.MustCompile(`^\{app1\}:rl:publish:(?:[A-Za-z0-9._@:-]{1,64}|~[A-Za-z0-9_-]{43})$`)
	seen := map[string]string{}
	for _, s := range subjects {
		key, err := limitKey("app1", "publish", s)
		if err != nil {
			t.Fatalf("subject %q: %v", s, err)
		}
		if !wellFormed.MatchString(key) {
			t.Errorf("subject %q: key %q is not well formed", s, key)
		}
		if other, dup := seen[key]; dup {
			t.Errorf("subjects %q and %q share key %q", other, s, key)
		}
		seen[key] = s
	}

	// The same subjects on a real store: each gets its own bucket.
	for _, b := range limiterBackends {
		t.Run(b.name, func(t *testing.T) {
			tl := b.new(t)
			l := tl.Limiter
			for _, s := range subjects {
				if v := take(t, l, "app1", "publish", s, PerMinute(1), 1); !v.Allowed {
					t.Errorf("subject %q found its bucket used", s)
				}
			}
			if tl.log == nil {
				return
			}
			for _, key := range commandKeys(t, tl.log) {
				if !wellFormed.MatchString(strings.TrimPrefix(key, tl.prefix+":")) {
					t.Errorf("key %q is not well formed", key)
				}
			}
		})
	}
}

// TestLimiter_InvalidArguments proves that a caller's mistake is an error
// and a refusal, never a panic, an admission or a malformed key.
func TestLimiter_InvalidArguments(t *testing.T) {
	cases := []struct {
		name          string
		scope, bucket string
		rate          Rate
	}{
		{"empty scope", "", "publish", PerMinute(5)},
		{"upper-case scope", "GLOBAL", "publish", PerMinute(5)},
		{"scope with a brace", "1}", "publish", PerMinute(5)},
		{"scope with a hash tag", "{1}", "publish", PerMinute(5)},
		{"scope with a colon", "a:b", "publish", PerMinute(5)},
		{"scope with a space", "a b", "publish", PerMinute(5)},
		{"scope with a glob", "app*", "publish", PerMinute(5)},
		{"scope of 33 characters", strings.Repeat("a", 33), "publish", PerMinute(5)},
		{"bad scope with an unlimited rate", "a:b", "publish", Rate{}},
		{"empty bucket", "app1", "", PerMinute(5)},
		{"bucket with a colon", "app1", "publish:x", PerMinute(5)},
		{"bucket with a brace", "app1", "pub{lish}", PerMinute(5)},
		{"zero period", "app1", "publish", Rate{Limit: 5}},
		{"negative period", "app1", "publish", Rate{Limit: 5, Period: -time.Second}},
		{"sub-millisecond period", "app1", "publish", Rate{Limit: 5, Period: time.Microsecond}},
	}
	for _, b := range limiterBackends {
		t.Run(b.name, func(t *testing.T) {
			tl := b.new(t)
			for _, c := range cases {
				v, err := tl.Take(context.Background(), c.scope, c.bucket, "app", c.rate, 1)
				if err == nil || v.Allowed {
					t.Errorf("%s: Take = %+v, %v; want a refusal and an error", c.name, v, err)
				}
			}
			if tl.log != nil && len(tl.log.Commands()) != 0 {
				t.Errorf("invalid takes sent Redis %v", tl.log.Commands())
			}
		})
	}
}

func TestNewLimiter_PrefixWithBracePanics(t *testing.T) {
	for _, prefix := range []string{"a{b", "a}b", "{x}"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewLimiter with prefix %q did not panic", prefix)
				}
			}()
			NewLimiter(LimiterOptions{Prefix: prefix})
		}()
	}
}

// logRecorder is a slog.Handler that keeps every record.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r)
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// count returns how many records were logged at level.
func (h *logRecorder) count(level slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.records {
		if r.Level == level {
			n++
		}
	}
	return n
}

// deadRedis returns a client of a port where nothing listens.
func deadRedis(t *testing.T) *redis.Client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	// One dial attempt per call keeps the test quick; go-redis's own
	// retries would only make each failed call slower.
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, DialerRetries: 1, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestLimiter_RedisDown proves that without Redis a Limiter still limits,
// in memory, without errors and without a warning per call.
func TestLimiter_RedisDown(t *testing.T) {
	for _, probeEvery := range []time.Duration{redisProbeInterval, 0} {
		t.Run(fmt.Sprintf("probe every %v", probeEvery), func(t *testing.T) {
			logs := &logRecorder{}
			l := NewLimiter(LimiterOptions{Redis: deadRedis(t), Log: slog.New(logs)})
			// With 0, every call asks Redis and fails: only the warn
			// interval keeps the log quiet.
			l.probeEvery = probeEvery
			for i := range 20 {
				v := take(t, l, "app1", "publish", "app", PerMinute(3), 1)
				if v.Allowed != (i < 3) {
					t.Fatalf("take %d: %+v, want allowed=%v", i+1, v, i < 3)
				}
			}
			if n := logs.count(slog.LevelWarn); n != 1 {
				t.Fatalf("%d warnings for 20 calls, want 1", n)
			}
		})
	}

	t.Run("concurrent takes never exceed the limit", func(t *testing.T) {
		l := NewLimiter(LimiterOptions{Redis: deadRedis(t)})
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				v, err := l.Take(context.Background(), GlobalScope, "ws-ip", "127.0.0.2", PerMinute(10), 1)
				if err != nil {
					t.Error(err)
				}
				if v.Allowed {
					allowed.Add(1)
				}
			})
		}
		wg.Wait()
		if n := allowed.Load(); n != 10 {
			t.Fatalf("%d of 50 concurrent takes allowed, want 10", n)
		}
	})
}

// TestLimiter_CanceledCallerIsNoOutage proves that a caller that gave up
// gets a verdict from memory without Redis being taken for down.
func TestLimiter_CanceledCallerIsNoOutage(t *testing.T) {
	logs := &logRecorder{}
	l := NewLimiter(LimiterOptions{Redis: deadRedis(t), Log: slog.New(logs)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v, err := l.Take(ctx, "app1", "publish", "app", PerMinute(1), 1)
	if err != nil || !v.Allowed {
		t.Fatalf("Take = %+v, %v; want allowed from memory", v, err)
	}
	if l.retryAt.Load() != 0 || logs.count(slog.LevelWarn) != 0 {
		t.Fatal("a canceled caller marked Redis down")
	}
	if v := take(t, l, "app1", "publish", "app", PerMinute(1), 1); v.Allowed {
		t.Fatalf("the memory count was lost: %+v", v)
	}
	if logs.count(slog.LevelWarn) != 1 {
		t.Fatal("a real failure was not logged")
	}
}

// outage is a go-redis hook that fails every command while down is set,
// and counts the commands it lets through.
type outage struct {
	down   atomic.Bool
	passed atomic.Int64
}

func (o *outage) DialHook(next redis.DialHook) redis.DialHook { return next }

func (o *outage) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if o.down.Load() {
			err := errors.New("simulated outage")
			cmd.SetErr(err)
			return err
		}
		o.passed.Add(1)
		return next(ctx, cmd)
	}
}

func (o *outage) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestLimiter_RedisRecovers proves that a Limiter goes back to Redis once
// it answers again.
func TestLimiter_RedisRecovers(t *testing.T) {
	client := redistest.Client(t, redistest.URL(t))
	o := &outage{}
	client.AddHook(o)
	logs := &logRecorder{}
	l := NewLimiter(LimiterOptions{Redis: client, Prefix: redistest.Prefix(t, client), Log: slog.New(logs)})
	l.probeEvery = 10 * time.Millisecond
	rate := PerMinute(2)

	o.down.Store(true)
	for i := range 3 {
		if v := take(t, l, "app1", "publish", "app", rate, 1); v.Allowed != (i < 2) {
			t.Fatalf("during the outage, take %d: %+v", i+1, v)
		}
	}
	if logs.count(slog.LevelWarn) != 1 {
		t.Fatalf("%d warnings during the outage, want 1", logs.count(slog.LevelWarn))
	}

	o.down.Store(false)
	time.Sleep(2 * l.probeEvery)
	// Redis never saw the outage's events: its bucket is fresh.
	if v := take(t, l, "app1", "publish", "app", rate, 1); !v.Allowed || v.Remaining != 1 {
		t.Fatalf("after the outage: %+v, want Redis's fresh bucket", v)
	}
	if o.passed.Load() == 0 {
		t.Fatal("Redis was not asked after it came back")
	}
	if logs.count(slog.LevelInfo) != 1 {
		t.Fatalf("%d recovery notices, want 1", logs.count(slog.LevelInfo))
	}
	take(t, l, "app1", "publish", "app", rate, 1)
	if v := take(t, l, "app1", "publish", "app", rate, 1); v.Allowed {
		t.Fatalf("Redis's bucket did not fill: %+v", v)
	}
}

func TestLimiter_RetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name string
		v    Verdict
		want time.Duration
	}{
		{"allowed", Verdict{Allowed: true, Reset: now.Add(30 * time.Second)}, 0},
		{"reset in 200 ms", Verdict{Reset: now.Add(200 * time.Millisecond)}, time.Second},
		{"reset in exactly 1 s", Verdict{Reset: now.Add(time.Second)}, time.Second},
		{"reset in 1.001 s", Verdict{Reset: now.Add(1001 * time.Millisecond)}, 2 * time.Second},
		{"reset in 59.5 s", Verdict{Reset: now.Add(59500 * time.Millisecond)}, 60 * time.Second},
		{"reset now", Verdict{Reset: now}, time.Second},
		{"reset past", Verdict{Reset: now.Add(-time.Hour)}, time.Second},
		{"no reset", Verdict{}, time.Second},
	}
	for _, c := range cases {
		if got := c.v.RetryAfter(now); got != c.want {
			t.Errorf("%s: RetryAfter = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestRate_Conveniences(t *testing.T) {
	if r := PerSecond(7); r != (Rate{Limit: 7, Period: time.Second}) {
		t.Errorf("PerSecond(7) = %+v", r)
	}
	if r := PerMinute(7); r != (Rate{Limit: 7, Period: time.Minute}) {
		t.Errorf("PerMinute(7) = %+v", r)
	}
}
