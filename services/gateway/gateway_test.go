package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/services/broker"
	"github.com/heraldrt/herald/services/presence"
	"github.com/heraldrt/herald/services/protocol"
	"github.com/heraldrt/herald/tenants"
)

func TestConnectRefusals(t *testing.T) {
	disabled := testApp(t, "2", "off")
	disabled.Enabled = false
	quota := testApp(t, "3", "small")
	quota.Settings.Limits.MaxConnections = 1
	n := testNode(t, Config{}, testApp(t, "1", "key"), disabled, quota)
	connect(t, n, "small")
	cases := []struct {
		key, version string
		code         int
	}{
		{"nope", "7", protocol.CodeAppNotFound},
		{"off", "7", protocol.CodeAppDisabled},
		{"key", "", protocol.CodeNoProtocol},
		{"key", "3", protocol.CodeUnsupportedProtocol},
		{"small", "7", protocol.CodeOverQuota},
	}
	for _, tc := range cases {
		_, err := n.Connect(context.Background(), tc.key, tc.version, newFake())
		r, ok := err.(*Refusal)
		if !ok || r.Code != tc.code {
			t.Errorf("Connect(%q, %q) = %v, want code %d", tc.key, tc.version, err, tc.code)
		}
	}
}

func TestPublishReachesSubscribersExceptExcluded(t *testing.T) {
	n := testNode(t, Config{}, testApp(t, "1", "key"), testApp(t, "2", "other"))
	a, b := connect(t, n, "key"), connect(t, n, "key")
	otherApp := connect(t, n, "other")
	for _, cn := range []*conn{a, b, otherApp} {
		cn.send(`{"event":"pusher:subscribe","data":{"channel":"news"}}`)
		cn.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	}
	err := publishTo(n, "1", "news", broker.Publication{Event: "flash", Data: []byte(`{"x":1}`), ExcludeSocketID: a.c.SocketID()})
	if err != nil {
		t.Fatal(err)
	}
	got := b.t.waitEvent(t, "flash")
	if got["channel"] != "news" || got["data"] != `{"x":1}` {
		t.Errorf("b got %v", got)
	}
	// A control publish afterwards proves the excluded and the other app's
	// connections have had their chance to receive "flash".
	if err := publishTo(n, "1", "news", broker.Publication{Event: "after", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	a.t.waitEvent(t, "after")
	if a.t.count(t, "flash") != 0 {
		t.Error("excluded socket received the event")
	}
	if otherApp.t.count(t, "flash") != 0 || otherApp.t.count(t, "after") != 0 {
		t.Error("an event crossed into another app with the same channel name")
	}
}

func TestPrivateSubscriptionChecksSignature(t *testing.T) {
	app := testApp(t, "1", "key")
	n := testNode(t, Config{}, app)
	c := connect(t, n, "key")
	forged := authz.ChannelToken(app.PrimaryKey(), "1.2", "private-x", "")
	c.send(fmt.Sprintf(`{"event":"pusher:subscribe","data":{"channel":"private-x","auth":%q}}`, forged))
	if e := c.t.waitEvent(t, "pusher:subscription_error"); e["channel"] != "private-x" {
		t.Errorf("subscription_error = %v", e)
	}
	good := authz.ChannelToken(app.PrimaryKey(), c.c.SocketID(), "private-x", "")
	c.send(fmt.Sprintf(`{"event":"pusher:subscribe","data":{"channel":"private-x","auth":%q}}`, good))
	c.t.waitEvent(t, "pusher_internal:subscription_succeeded")
}

func TestClientEventRateLimitKeepsConnection(t *testing.T) {
	app := testApp(t, "1", "key")
	app.Settings.Limits.ClientEventsPerSecond = 3
	n := testNode(t, Config{}, app)
	sender, receiver := connect(t, n, "key"), connect(t, n, "key")
	for _, cn := range []*conn{sender, receiver} {
		tok := authz.ChannelToken(app.PrimaryKey(), cn.c.SocketID(), "private-chat", "")
		cn.send(fmt.Sprintf(`{"event":"pusher:subscribe","data":{"channel":"private-chat","auth":%q}}`, tok))
		cn.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	}
	for i := 0; i < 5; i++ {
		sender.send(`{"event":"client-typing","channel":"private-chat","data":{"n":1}}`)
	}
	e := sender.t.waitEvent(t, "pusher:error")
	if code := e["data"].(map[string]any)["code"]; code != float64(protocol.CodeClientEventRateLimit) {
		t.Errorf("error code = %v, want 4301", code)
	}
	sender.send(`{"event":"pusher:ping","data":{}}`)
	sender.t.waitEvent(t, "pusher:pong")
	flushChannel(t, n, receiver, "private-chat")
	if got := receiver.t.count(t, "client-typing"); got != 3 {
		t.Errorf("receiver got %d client events, want the 3 within the limit", got)
	}
	if sender.t.count(t, "client-typing") != 0 {
		t.Error("client event echoed to its sender")
	}
	sender.t.mu.Lock()
	closed := sender.t.closed
	sender.t.mu.Unlock()
	if closed {
		t.Error("rate-limited connection was closed")
	}
}

func TestPresenceMembersPerUser(t *testing.T) {
	app := testApp(t, "1", "key")
	n := testNode(t, Config{}, app)
	join := func(user string) *conn {
		cn := connect(t, n, "key")
		data := fmt.Sprintf(`{"user_id":%q,"user_info":{"name":%q}}`, user, strings.ToUpper(user))
		tok := authz.ChannelToken(app.PrimaryKey(), cn.c.SocketID(), "presence-room", data)
		cn.send(fmt.Sprintf(`{"event":"pusher:subscribe","data":{"channel":"presence-room","auth":%q,"channel_data":%q}}`, tok, data))
		cn.t.waitEvent(t, "pusher_internal:subscription_succeeded")
		return cn
	}
	watcher := join("w")
	u1a := join("u1")
	u1b := join("u1")
	flushChannel(t, n, watcher, "presence-room")
	if got := watcher.t.count(t, "pusher_internal:member_added"); got != 1 {
		t.Fatalf("member_added sent %d times for one user with two connections", got)
	}
	succ := u1b.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	if !strings.Contains(succ["data"].(string), `"count":2`) {
		t.Errorf("member list = %s, want 2 users", succ["data"])
	}
	u1a.hangUp()
	flushChannel(t, n, watcher, "presence-room")
	if watcher.t.count(t, "pusher_internal:member_removed") != 0 {
		t.Fatal("member_removed sent while the user still has a connection")
	}
	u1b.hangUp()
	removed := watcher.t.waitEvent(t, "pusher_internal:member_removed")
	if removed["data"] != `{"user_id":"u1"}` {
		t.Errorf("member_removed data = %v", removed["data"])
	}
	if users, _ := n.Users(context.Background(), "1", "presence-room"); len(users) != 1 || users[0] != "w" {
		t.Errorf("users = %v, want [w]", users)
	}
}

func TestSlowConsumerIsClosedWith4100(t *testing.T) {
	n := testNode(t, Config{QueueFrames: 5}, testApp(t, "1", "key"))
	slow := connect(t, n, "key")
	slow.send(`{"event":"pusher:subscribe","data":{"channel":"c"}}`)
	slow.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	slow.t.block = make(chan struct{})
	fast := connect(t, n, "key")
	fast.send(`{"event":"pusher:subscribe","data":{"channel":"c"}}`)
	fast.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	// The fast client drains each event before the next is published, so
	// only the blocked one builds a backlog.
	for i := 1; i <= 20; i++ {
		_ = publishTo(n, "1", "c", broker.Publication{Event: "e", Data: []byte("x")})
		for deadline := time.Now().Add(2 * time.Second); fast.t.count(t, "e") < i; {
			if time.Now().After(deadline) {
				t.Fatalf("fast client stuck at %d events", fast.t.count(t, "e"))
			}
			time.Sleep(time.Millisecond)
		}
	}
	close(slow.t.block)
	waitClose(t, slow, protocol.CodeOverCapacity)
	if got := slow.t.count(t, "e"); got >= 20 {
		t.Errorf("slow client got all %d events despite overflowing", got)
	}
	if n.Stats().SlowConsumers != 1 {
		t.Errorf("slow consumers counted = %d", n.Stats().SlowConsumers)
	}
}

func TestWriterCoalescesQueuedFrames(t *testing.T) {
	n := testNode(t, Config{}, testApp(t, "1", "key"))
	cn := connect(t, n, "key")
	cn.t.waitEvent(t, "pusher:connection_established")
	cn.t.block = make(chan struct{})
	cn.c.Enqueue([]byte(`{"event":"a","data":"1"}`)) // the writer takes it and blocks
	time.Sleep(20 * time.Millisecond)
	for i := 0; i < 10; i++ {
		cn.c.Enqueue([]byte(`{"event":"b","data":"1"}`))
	}
	close(cn.t.block)
	deadline := time.Now().Add(2 * time.Second)
	for cn.t.count(t, "b") < 10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cn.t.mu.Lock()
	writes := cn.t.writes
	cn.t.mu.Unlock()
	// connection_established, "a", then the ten "b" frames in one write.
	if writes != 3 {
		t.Errorf("%d writes, want 3 (the ten queued frames coalesced into one)", writes)
	}
}

func TestTerminateUserClosesOnlyThatUser(t *testing.T) {
	app := testApp(t, "1", "key")
	n := testNode(t, Config{}, app)
	signin := func(user string) *conn {
		cn := connect(t, n, "key")
		data := fmt.Sprintf(`{"id":%q}`, user)
		tok := authz.UserToken(app.PrimaryKey(), cn.c.SocketID(), data)
		cn.send(fmt.Sprintf(`{"event":"pusher:signin","data":{"auth":%q,"user_data":%q}}`, tok, data))
		cn.t.waitEvent(t, "pusher:signin_success")
		return cn
	}
	a1, a2, b := signin("alice"), signin("alice"), signin("bob")
	if err := n.TerminateUser(context.Background(), "1", "alice"); err != nil {
		t.Fatal(err)
	}
	for _, cn := range []*conn{a1, a2} {
		waitClose(t, cn, protocol.CodeUnauthorized)
	}
	b.send(`{"event":"pusher:ping","data":{}}`)
	b.t.waitEvent(t, "pusher:pong")
	b.t.mu.Lock()
	defer b.t.mu.Unlock()
	if b.t.closed {
		t.Error("another user's connection was closed")
	}
}

func TestPanicInHandlerClosesOnlyThatConnection(t *testing.T) {
	app := testApp(t, "1", "key")
	n := testNode(t, Config{}, app)
	victim, bystander := connect(t, n, "key"), connect(t, n, "key")
	victim.c.channels = nil // a write to a nil map in subscribe panics
	victim.send(`{"event":"pusher:subscribe","data":{"channel":"c"}}`)
	<-victim.ended
	if got := n.Stats().Panics; got != 1 {
		t.Errorf("panics counted = %d, want 1", got)
	}
	bystander.send(`{"event":"pusher:ping","data":{}}`)
	bystander.t.waitEvent(t, "pusher:pong")
}

// A change announced for an app closes its connections when the app was
// disabled (4003), and asks those made with a revoked key to reconnect
// (4200), on every node that receives the announcement.
func TestInvalidateAppRechecksConnections(t *testing.T) {
	store := tenants.NewMemoryStore()
	app := testApp(t, "1", "key")
	if err := store.PutApp(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	other := testApp(t, "2", "other")
	if err := store.PutApp(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	n, err := NewNode(Config{}, Deps{Apps: store, Broker: broker.NewMemory(), Presence: presence.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })

	newKey, err := store.CreateKey(context.Background(), "1")
	if err != nil {
		t.Fatal(err)
	}
	oldKeyConn, newKeyConn, bystander := connect(t, n, "key"), connect(t, n, newKey.Key), connect(t, n, "other")
	if err := store.RevokeKey(context.Background(), "1", "key"); err != nil {
		t.Fatal(err)
	}
	if err := n.InvalidateApp(context.Background(), "1"); err != nil {
		t.Fatal(err)
	}
	waitClose(t, oldKeyConn, protocol.CodeReconnect)
	if closedWith(newKeyConn) != 0 {
		t.Fatal("a connection with a still active key was closed")
	}
	if _, err := store.UpdateApp(context.Background(), "1", func(a *tenants.App) error { a.Enabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := n.InvalidateApp(context.Background(), "1"); err != nil {
		t.Fatal(err)
	}
	waitClose(t, newKeyConn, protocol.CodeAppDisabled)
	if closedWith(bystander) != 0 {
		t.Error("another app's connection was closed")
	}
}

func closedWith(cn *conn) int {
	cn.t.mu.Lock()
	defer cn.t.mu.Unlock()
	return cn.t.code
}

func waitClose(t *testing.T, cn *conn, code int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); closedWith(cn) != code; {
		if time.Now().After(deadline) {
			t.Fatalf("close code = %d, want %d", closedWith(cn), code)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// flushChannel publishes a marker on channel and waits until cn has it: the
// broker delivers a channel in order, so everything published on it before
// has reached cn too.
func flushChannel(t *testing.T, n *Node, cn *conn, channel string) {
	t.Helper()
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	if err := publishTo(n, "1", channel, broker.Publication{Event: marker, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	cn.t.waitEvent(t, marker)
}
