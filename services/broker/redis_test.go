package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldrt/herald/internal/redistest"
)

func TestRedisBroker(t *testing.T) {
	client := redistest.Client(t, redistest.URL(t))
	for _, key := range [][]byte{[]byte("cluster-key"), nil} {
		t.Run(fmt.Sprintf("signed=%t", key != nil), func(t *testing.T) {
			testBroker(t, func(t *testing.T) Broker {
				b := NewRedis(client, RedisOptions{Prefix: redistest.Prefix(t, nil), ClusterKey: key})
				t.Cleanup(func() { b.Close() })
				return b
			})
		})
	}
}

// Two brokers on one Redis with one prefix are two nodes of a deployment;
// a broker with another prefix is another deployment.
func TestRedisBrokerTwoNodes(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t, redistest.URL(t))
	prefix := redistest.Prefix(t, nil)
	key := []byte("k")
	a, recA := runBroker(t, redisBroker(client, RedisOptions{Prefix: prefix, ClusterKey: key}))
	b, recB := runBroker(t, redisBroker(client, RedisOptions{Prefix: prefix, ClusterKey: key}))
	other, recOther := runBroker(t, redisBroker(client, RedisOptions{Prefix: redistest.Prefix(t, nil), ClusterKey: key}))

	mustOK(t, b.Subscribe(ctx, "app1", "presence-room"))
	mustOK(t, other.Subscribe(ctx, "app1", "presence-room"))
	mustOK(t, a.Publish(ctx, "app1", "presence-room", &Publication{Event: "hello", Data: []byte(`"x"`)}))
	if have := recB.waitPubs(t, 1); have[0].app != "app1" || have[0].pub.Event != "hello" {
		t.Fatalf("node B got %v", have)
	}

	c := Control{Kind: TerminateUser, AppID: "app1", UserID: "u1"}
	mustOK(t, a.PublishControl(ctx, c))
	for name, rec := range map[string]*recorder{"A": recA, "B": recB} {
		if have := rec.waitCtls(t, 1); !slices.Equal(have, []Control{c}) {
			t.Errorf("node %s got control %v", name, have)
		}
	}
	recA.expectNoMore(t, 0)
	recOther.expectNoMore(t, 0)
	if _, ctls := recOther.snapshot(); len(ctls) != 0 {
		t.Errorf("another deployment got control messages: %v", ctls)
	}
}

// A message PUBLISHed raw onto an app's Redis channel is delivered only if
// it is a well-formed, correctly signed envelope naming that app and
// channel (ISO-3, ISO-7).
func TestRedisBrokerDropsForgedEnvelopes(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t, redistest.URL(t))
	prefix := redistest.Prefix(t, nil)
	key := []byte("cluster-key")
	b, rec := runBroker(t, redisBroker(client, RedisOptions{Prefix: prefix, ClusterKey: key}))
	rb := b.(*Redis)
	mustOK(t, b.Subscribe(ctx, "app1", "room"))
	room := rb.channelKey("app1", "room")
	ctl := prefix + ":ctl"

	sealed := func(key []byte, rc string, msg any) string {
		p, err := seal(key, rc, msg)
		mustOK(t, err)
		return string(p)
	}
	forged := []struct{ name, channel, payload string }{
		{"other app inside", room, sealed(key, room, pubMsg{App: "app2", Channel: "room", Event: "x"})},
		{"other channel inside", room, sealed(key, room, pubMsg{App: "app1", Channel: "lobby", Event: "x"})},
		{"unsigned", room, sealed(nil, room, pubMsg{App: "app1", Channel: "room", Event: "x"})},
		{"signed with another key", room, sealed([]byte("other"), room, pubMsg{App: "app1", Channel: "room", Event: "x"})},
		{"signed for another channel", room, sealed(key, rb.channelKey("app2", "room"), pubMsg{App: "app1", Channel: "room", Event: "x"})},
		{"not JSON", room, "O:8:\"stdClass\":0:{}"},
		{"unknown version", room, `{"v":2,"msg":{}}`},
		{"control garbage", ctl, "{"},
		{"control unsigned", ctl, sealed(nil, ctl, ctlMsg{Kind: TerminateUser, App: "app1", User: "u"})},
		{"control unknown kind", ctl, sealed(key, ctl, ctlMsg{Kind: 99, App: "app1"})},
		{"control bad app id", ctl, sealed(key, ctl, ctlMsg{Kind: InvalidateApp, App: "x}y"})},
	}
	for _, f := range forged {
		mustOK(t, client.Publish(ctx, f.channel, f.payload).Err())
	}
	// A genuine publication after the forged ones proves they were read.
	mustOK(t, b.Publish(ctx, "app1", "room", &Publication{Event: "genuine"}))
	if have := rec.waitPubs(t, 1); have[0].pub.Event != "genuine" {
		t.Fatalf("a forged envelope was delivered: %v", have)
	}
	rec.expectNoMore(t, 1)
	if _, ctls := rec.snapshot(); len(ctls) != 0 {
		t.Fatalf("a forged control message was delivered: %v", ctls)
	}
	if got := rb.Stats().DroppedEnvelopes; got != uint64(len(forged)) {
		t.Fatalf("dropped %d envelopes, want %d", got, len(forged))
	}

	// Without a cluster key the envelope is still checked against the
	// channel it came on.
	u, urec := runBroker(t, redisBroker(client, RedisOptions{Prefix: prefix + "u"}))
	mustOK(t, u.Subscribe(ctx, "app1", "room"))
	uroom := u.(*Redis).channelKey("app1", "room")
	mustOK(t, client.Publish(ctx, uroom, sealed(nil, uroom, pubMsg{App: "app2", Channel: "room", Event: "x"})).Err())
	mustOK(t, u.Publish(ctx, "app1", "room", &Publication{Event: "genuine"}))
	if have := urec.waitPubs(t, 1); have[0].pub.Event != "genuine" {
		t.Fatalf("unsigned broker delivered a forged envelope: %v", have)
	}
	if got := u.(*Redis).Stats().DroppedEnvelopes; got != 1 {
		t.Fatalf("unsigned broker dropped %d, want 1", got)
	}
}

// Every Redis channel the broker touches carries the deployment prefix and
// either the app's hash tag or is the control channel (ISO-3). A private
// server guarantees no other test's channels are listed.
func TestRedisBrokerChannelScope(t *testing.T) {
	ctx := context.Background()
	srv := startRedisServer(t)
	client := redistest.Client(t, srv.url())
	var cmds redistest.CommandLog
	client.AddHook(&cmds)
	const prefix = "scoped"
	b, rec := runBroker(t, redisBroker(client, RedisOptions{Prefix: prefix, ClusterKey: []byte("k")}))
	for _, sub := range []struct{ app, channel string }{{"app1", "presence-room"}, {"app2", "private-a:b{c}"}} {
		mustOK(t, b.Subscribe(ctx, sub.app, sub.channel))
		mustOK(t, b.Publish(ctx, sub.app, sub.channel, &Publication{Event: "e"}))
	}
	mustOK(t, b.PublishControl(ctx, Control{Kind: InvalidateApp, AppID: "app1"}))
	rec.waitPubs(t, 2)
	rec.waitCtls(t, 1)

	channels, err := client.PubSubChannels(ctx, "*").Result()
	mustOK(t, err)
	if len(channels) != 3 {
		t.Errorf("subscribed channels %v, want 3", channels)
	}
	for _, c := range append(channels, commandArgs(&cmds, "publish", 1)...) {
		if !scoped(prefix, c) {
			t.Errorf("channel %q lacks the prefix and app tag", c)
		}
	}
	if keys, _ := client.Keys(ctx, "*").Result(); len(keys) != 0 {
		t.Errorf("the broker wrote keys: %v", keys)
	}
	for _, bad := range []string{"", "a}b", "{a", "a:b"} {
		if err := b.Publish(ctx, bad, "c", &Publication{}); err == nil {
			t.Errorf("Publish accepted app id %q", bad)
		}
		if err := b.Subscribe(ctx, bad, "c"); err == nil {
			t.Errorf("Subscribe accepted app id %q", bad)
		}
	}
}

func scoped(prefix, channel string) bool {
	if channel == prefix+":ctl" {
		return true
	}
	rest, ok := strings.CutPrefix(channel, prefix+":{")
	if !ok {
		return false
	}
	app, _, ok := strings.Cut(rest, "}:")
	return ok && app != "" && !strings.ContainsAny(app, "{}:")
}

// After a Redis restart the same broker resubscribes and delivers again;
// while Redis is down it reports not ready, publishing fails fast, and it
// does not pile up goroutines.
func TestRedisBrokerSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	srv := startRedisServer(t)
	// Fail fast while Redis is down: no dial or command retries.
	client := redistest.Client(t, srv.url(), func(o *redis.Options) { o.DialerRetries, o.MaxRetries = 1, -1 })
	b, rec := runBroker(t, redisBroker(client, RedisOptions{Prefix: "r", ClusterKey: []byte("k")}))
	mustOK(t, b.Subscribe(ctx, "app1", "room"))
	mustOK(t, b.Publish(ctx, "app1", "room", &Publication{Event: "before"}))
	rec.waitPubs(t, 1)

	srv.stop()
	time.Sleep(300 * time.Millisecond)
	if err := b.Ready(ctx); err == nil {
		t.Fatal("Ready while Redis is down: nil")
	} else {
		t.Logf("Ready while down: %v", err)
	}
	before := runtime.NumGoroutine()
	for range 10 {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		start := time.Now()
		if err := b.Publish(pctx, "app1", "room", &Publication{Event: "lost"}); err == nil {
			t.Fatal("Publish while Redis is down: nil")
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("Publish took %v to fail while Redis is down", d)
		}
		cancel()
		time.Sleep(100 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Errorf("goroutines grew from %d to %d while Redis was down", before, after)
	}
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := b.Subscribe(sctx, "app1", "refused"); err == nil {
		t.Fatal("Subscribe while Redis is down: nil")
	}

	srv.start()
	waitReady(t, b)
	// Keep publishing until the resubscribed connection delivers; the
	// first ones may race the resubscription.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mustOK(t, b.Publish(ctx, "app1", "room", &Publication{Event: "after"}))
		pubs, _ := rec.snapshot()
		if slices.ContainsFunc(pubs, func(g got) bool { return g.pub.Event == "after" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery after restart; got %v", pubs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := b.(*Redis).Stats().Reconnects; n < 1 {
		t.Errorf("reconnects = %d, want ≥ 1", n)
	}
	// A subscription that failed while Redis was down stays off.
	mustOK(t, b.Subscribe(ctx, "app1", "lobby"))
	mustOK(t, b.Publish(ctx, "app1", "refused", &Publication{Event: "no"}))
	mustOK(t, b.Publish(ctx, "app1", "lobby", &Publication{Event: "new"}))
	pubs, _ := rec.waitFor(t, "lobby publication", func(p []got, _ []Control) bool {
		return slices.ContainsFunc(p, func(g got) bool { return g.channel == "lobby" })
	})
	if slices.ContainsFunc(pubs, func(g got) bool { return g.channel == "refused" }) {
		t.Fatal("a subscription refused while Redis was down was restored")
	}
}

// TestRedisBrokerLatency logs the publish→handler latency through Redis.
func TestRedisBrokerLatency(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t, redistest.URL(t))
	h := latencyHandler(make(chan struct{}, 1))
	b := NewRedis(client, RedisOptions{Prefix: redistest.Prefix(t, nil), ClusterKey: []byte("k")})
	t.Cleanup(func() { b.Close() })
	mustOK(t, b.Run(h))
	waitReady(t, b)
	mustOK(t, b.Subscribe(ctx, "app1", "c"))
	const n = 500
	lat := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		mustOK(t, b.Publish(ctx, "app1", "c", &Publication{Event: "e", Data: []byte(`{"x":1}`)}))
		select {
		case <-h:
		case <-time.After(5 * time.Second):
			t.Fatal("publication not delivered")
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("publish→handler through Redis over %d publications: p50 %v, p99 %v", n, lat[n/2], lat[n*99/100])
}

type latencyHandler chan struct{}

func (h latencyHandler) HandlePublication(string, string, *Publication) { h <- struct{}{} }
func (h latencyHandler) HandleControl(Control)                          {}

func FuzzDecodeEnvelope(f *testing.F) {
	key := []byte("k")
	const rc, ctl = "h:{app1}:ch:room", "h:ctl"
	for _, k := range [][]byte{key, nil} {
		p, _ := encodePublication(k, rc, "app1", "room", &Publication{Event: "e", Data: []byte(`{"a":"é"}`), UserID: "u"})
		f.Add(p)
		c, _ := encodeControl(k, ctl, Control{Kind: TerminateUser, AppID: "app1", UserID: "u"})
		f.Add(c)
	}
	f.Add([]byte(`{"v":1,"msg":null}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		for _, k := range [][]byte{key, nil} {
			if _, err := decodePublication(k, rc, "app1", "room", payload); err == nil && k != nil {
				if _, err := open(k, rc, payload); err != nil {
					t.Fatal("accepted a publication whose MAC does not verify")
				}
			}
			if c, err := decodeControl(k, ctl, payload); err == nil {
				if c.Kind != TerminateUser && c.Kind != InvalidateApp || checkAppID(c.AppID) != nil {
					t.Fatalf("accepted control %+v", c)
				}
			}
		}
	})
}

func redisBroker(client redis.UniversalClient, opts RedisOptions) func(t *testing.T) Broker {
	return func(t *testing.T) Broker {
		b := NewRedis(client, opts)
		t.Cleanup(func() { b.Close() })
		return b
	}
}

// commandArgs returns argument i of every command named name in log.
func commandArgs(log *redistest.CommandLog, name string, i int) []string {
	var out []string
	for _, c := range log.Commands() {
		if strings.EqualFold(c[0], name) && len(c) > i {
			out = append(out, c[i])
		}
	}
	return out
}

// redisServer is a private redis-server that a test may stop and restart.
type redisServer struct {
	t       *testing.T
	port    int
	pidfile string
}

func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("this test starts its own redis-server, which is not installed (scripts/backends installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	mustOK(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &redisServer{t: t, port: port, pidfile: filepath.Join(t.TempDir(), "redis.pid")}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	out, err := exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "yes", "--pidfile", s.pidfile,
		"--logfile", s.pidfile+".log").CombinedOutput()
	if err != nil {
		s.t.Fatalf("redis-server: %v: %s", err, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprint("127.0.0.1:", s.port))
		if err == nil {
			c.Close()
			if _, err := os.Stat(s.pidfile); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on port %d did not start", s.port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server as a crash would, by the PID it wrote, and waits
// until it is gone.
func (s *redisServer) stop() {
	b, err := os.ReadFile(s.pidfile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	_ = os.Remove(s.pidfile)
	for range 250 {
		if exited(pid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Errorf("redis-server %d did not stop", pid)
}

// exited reports whether process pid is gone or a zombie: the daemonized
// server is not our child, so whoever reaps it may take its time.
func exited(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return strings.HasPrefix(rest, "Z")
}
