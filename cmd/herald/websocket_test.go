package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/authz"
)

// TestWebSocket_Errors sends bad handshakes and bad frames. After each case
// a healthy connection of the same app must still get a published event.
func TestWebSocket_Errors(t *testing.T) {
	t.Parallel()
	app := cred{"1", "key1", "secret1"}
	disabled := cred{"2", "key2", "secret2"}
	quota := cred{"3", "key3", "secret3"}
	m := startMain(t, testConfig(appsJSON(
		appJSON(app, "", ""),
		appJSON(disabled, `"enabled":false`, ""),
		appJSON(quota, "", `"max_connections":1`),
	)))

	healthy := dial(t, m.Addr, app.Key)
	healthy.subscribeOK("healthy", "", "")
	var seq atomic.Int64
	stillHealthy := func(t *testing.T, w *wsConn, c cred, channel string) {
		t.Helper()
		ev := "alive-" + strconv.FormatInt(seq.Add(1), 10)
		publish(t, m.Addr, c, channel, ev, "ok", "")
		if f := w.expectEvent(ev, channel); f.data() != "ok" {
			t.Fatalf("healthy connection got %s", f)
		}
	}
	t.Cleanup(func() {
		if !t.Failed() {
			healthy.ping()
		}
	})

	// refused checks a handshake refusal: the first frame is pusher:error
	// with the code, then the close carries the same code.
	refused := func(t *testing.T, path string, code int) {
		t.Helper()
		w := dialRaw(t, m.Addr, path)
		f := w.next()
		if e := f.pusherError(t); e.Code == nil || *e.Code != code || e.Message == "" {
			t.Fatalf("first frame %s: want pusher:error code %d with a message", f, code)
		}
		if rest := w.expectClosed(code, waitTimeout); len(rest) != 0 {
			t.Fatalf("frames after the refusal: %v", rest)
		}
	}

	t.Run("UnknownKey", func(t *testing.T) {
		refused(t, "/app/nosuchkey?protocol=7", 4001)
		stillHealthy(t, healthy, app, "healthy")
	})
	t.Run("DisabledApp", func(t *testing.T) {
		refused(t, "/app/"+disabled.Key+"?protocol=7", 4003)
		stillHealthy(t, healthy, app, "healthy")
	})
	t.Run("Protocol3", func(t *testing.T) {
		refused(t, "/app/"+app.Key+"?protocol=3", 4007)
		stillHealthy(t, healthy, app, "healthy")
	})
	t.Run("ProtocolNotANumber", func(t *testing.T) {
		refused(t, "/app/"+app.Key+"?protocol=seven", 4007)
		stillHealthy(t, healthy, app, "healthy")
	})
	t.Run("MissingProtocol", func(t *testing.T) {
		refused(t, "/app/"+app.Key, 4008)
		refused(t, "/app/"+app.Key+"?client=js&version=8.6.0", 4008)
		stillHealthy(t, healthy, app, "healthy")
	})
	t.Run("Protocol5And6Accepted", func(t *testing.T) {
		for _, v := range []string{"5", "6"} {
			w := dialRaw(t, m.Addr, "/app/"+app.Key+"?client=js&protocol="+v)
			if f := w.next(); f.Event != "pusher:connection_established" {
				t.Fatalf("protocol=%s: first frame %s", v, f)
			}
		}
	})
	t.Run("OverMaxConnections", func(t *testing.T) {
		first := dial(t, m.Addr, quota.Key)
		first.subscribeOK("q", "", "")
		refused(t, "/app/"+quota.Key+"?protocol=7", 4004)
		refused(t, "/app/"+quota.Key+"?protocol=7", 4004)
		stillHealthy(t, first, quota, "q")
		// Another app's quota is untouched.
		dial(t, m.Addr, app.Key).ping()
		// The slot is free again once the first connection leaves.
		first.close()
		waitFor(t, "a connection to app 3 after the first left", func() bool {
			w := dialRaw(t, m.Addr, "/app/"+quota.Key+"?protocol=7")
			defer w.close()
			return w.next().Event == "pusher:connection_established"
		})
	})
	t.Run("MalformedJSON", func(t *testing.T) {
		w := dial(t, m.Addr, app.Key)
		for _, bad := range []string{`{"event":`, `not json`, `[1,2]`, `{"data":{}}`, `{"event":42}`, "{\"event\":\"pusher:ping\",\"data\":\"\xff\"}"} {
			w.sendRaw(bad)
			if e := w.expectError(); e.Code != nil {
				t.Fatalf("malformed frame %q: code %d, want null", bad, *e.Code)
			}
		}
		w.ping()
		stillHealthy(t, healthy, app, "healthy")
	})
	t.Run("UnknownPusherEvent", func(t *testing.T) {
		w := dial(t, m.Addr, app.Key)
		w.sendRaw(`{"event":"pusher:bogus","data":{}}`)
		if e := w.expectError(); e.Code != nil {
			t.Fatalf("code %d, want null", *e.Code)
		}
		w.ping()
	})
	t.Run("BinaryFrame", func(t *testing.T) {
		w := dial(t, m.Addr, app.Key)
		if err := w.conn.WriteMessage(websocket.BinaryMessage, []byte(`{"event":"pusher:ping","data":{}}`)); err != nil {
			t.Fatal(err)
		}
		w.expectClosed(1003, waitTimeout)
		stillHealthy(t, healthy, app, "healthy")
	})
	t.Run("Frame40KiB", func(t *testing.T) {
		w := dial(t, m.Addr, app.Key)
		big := `{"event":"client-x","channel":"private-x","data":"` + strings.Repeat("x", 40<<10) + `"}`
		// The message goes out in fragments; the server may close before
		// the last one is written, so a write error is expected here.
		_ = w.conn.WriteMessage(websocket.TextMessage, []byte(big))
		w.expectClosed(1009, waitTimeout)
		stillHealthy(t, healthy, app, "healthy")
	})

	// Client-event cases share a private channel with a peer.
	peer := dial(t, m.Addr, app.Key)
	peer.subscribeOK("private-ce", authz.ChannelToken(app.tenantsKey(), peer.SocketID, "private-ce", ""), "")
	privateSender := func(t *testing.T) *wsConn {
		w := dial(t, m.Addr, app.Key)
		w.subscribeOK("private-ce", handChannelToken(app, w.SocketID, "private-ce", ""), "")
		return w
	}

	t.Run("ClientEventOver10KB", func(t *testing.T) {
		w := privateSender(t)
		w.clientEvent("private-ce", "client-big", strings.Repeat("x", 10241))
		if e := w.expectError(); e.Code != nil {
			t.Fatalf("code %d, want null", *e.Code)
		}
		w.ping()
		// Exactly at the limit is relayed.
		w.clientEvent("private-ce", "client-max", strings.Repeat("y", 10240))
		if f := peer.expectEvent("client-max", "private-ce"); len(f.data()) != 10240 {
			t.Fatalf("10240-byte client event arrived with %d bytes", len(f.data()))
		}
		noneOf(t, w.ping(), "error for a client event at the limit", isEvent("pusher:error", ""))
		// On a private channel no user_id is added, and a client's own
		// claim is dropped (SIG-5).
		w.send(map[string]any{"event": "client-claim", "channel": "private-ce", "data": "c", "user_id": "admin"})
		if f := peer.expectEvent("client-claim", "private-ce"); f.UserID != nil {
			t.Fatalf("private client event carries user_id: %s", f)
		}
		stillHealthy(t, healthy, app, "healthy")
	})
	t.Run("ClientEventRateLimit", func(t *testing.T) {
		w := privateSender(t)
		for i := range 11 {
			w.clientEvent("private-ce", "client-burst", map[string]int{"i": i})
		}
		limited := 0
		for _, f := range w.ping() { // the connection stays open and answers
			if f.Event != "pusher:error" {
				continue
			}
			if e := f.pusherError(t); e.Code == nil || *e.Code != 4301 {
				t.Fatalf("unexpected error %s", f)
			}
			limited++
		}
		if limited == 0 {
			t.Fatal("11 client events in quick succession: no pusher:error 4301")
		}
		// The peer got exactly the ones that were not refused.
		for range 11 - limited {
			peer.expectEvent("client-burst", "private-ce")
		}
		publish(t, m.Addr, app, "private-ce", "marker", "", "")
		noneOf(t, peer.until("marker", "private-ce"), "a rate-limited client event", isEvent("client-burst", "private-ce"))
		stillHealthy(t, healthy, app, "healthy")
	})
	t.Run("ClientEventOnPublicChannel", func(t *testing.T) {
		w := dial(t, m.Addr, app.Key)
		w.subscribeOK("public-ce", "", "")
		peer2 := dial(t, m.Addr, app.Key)
		peer2.subscribeOK("public-ce", "", "")
		w.clientEvent("public-ce", "client-x", "z")
		if e := w.expectError(); e.Code != nil {
			t.Fatalf("code %d, want null", *e.Code)
		}
		w.ping()
		publish(t, m.Addr, app, "public-ce", "marker", "", "")
		noneOf(t, peer2.until("marker", "public-ce"), "client event on a public channel", isEvent("client-x", "public-ce"))
	})
	t.Run("ClientEventNotSubscribed", func(t *testing.T) {
		w := dial(t, m.Addr, app.Key)
		w.clientEvent("private-ce", "client-sneak", "z")
		if e := w.expectError(); e.Code != nil {
			t.Fatalf("code %d, want null", *e.Code)
		}
		w.ping()
		publish(t, m.Addr, app, "private-ce", "marker", "", "")
		noneOf(t, peer.until("marker", "private-ce"), "client event from a non-subscriber", isEvent("client-sneak", "private-ce"))
	})
	t.Run("ReservedEventFromClient", func(t *testing.T) {
		// SIG-5: a client cannot inject pusher_internal: frames.
		w := privateSender(t)
		w.send(map[string]any{"event": "pusher_internal:member_added", "channel": "private-ce", "data": `{"user_id":"ghost"}`})
		w.send(map[string]any{"event": "pusher:subscription_succeeded", "channel": "private-ce", "data": `{}`})
		w.send(map[string]any{"event": "herald:x", "channel": "private-ce", "data": `{}`})
		w.ping()
		publish(t, m.Addr, app, "private-ce", "marker", "", "")
		noneOf(t, peer.until("marker", "private-ce"), "client-sent reserved event", func(f frame) bool {
			return !strings.HasPrefix(f.Event, "client-")
		})
	})
	t.Run("SubscribeTwice", func(t *testing.T) {
		w := dial(t, m.Addr, app.Key)
		w.subscribeOK("twice", "", "")
		w.subscribeOK("twice", "", "")
		if n := channelInfo(t, m.Addr, app, "twice", "subscription_count")["subscription_count"]; n != float64(1) {
			t.Fatalf("subscription_count after subscribing twice = %v, want 1", n)
		}
		publish(t, m.Addr, app, "twice", "once", "x", "")
		w.expectEvent("once", "twice")
		publish(t, m.Addr, app, "twice", "marker", "", "")
		noneOf(t, w.until("marker", "twice"), "duplicate delivery", isEvent("once", "twice"))
		stillHealthy(t, healthy, app, "healthy")
	})
	t.Run("InvalidChannelName", func(t *testing.T) {
		w := dial(t, m.Addr, app.Key)
		for _, name := range []string{"bad channel!", strings.Repeat("x", 165), "ünïcode"} {
			if e := w.subscribeRefused(name, "", ""); e.Status != 400 {
				t.Fatalf("%q: status %d, want 400", name, e.Status)
			}
		}
		w.subscribe("", "", "")
		if e := w.expectError(); e.Code != nil {
			t.Fatalf("empty channel: code %d, want null", *e.Code)
		}
		w.ping()
		stillHealthy(t, healthy, app, "healthy")
	})
	t.Run("UnsubscribeStopsDelivery", func(t *testing.T) {
		w := dial(t, m.Addr, app.Key)
		w.subscribeOK("unsub", "", "")
		w.subscribeOK("unsub-marker", "", "")
		w.send(map[string]any{"event": "pusher:unsubscribe", "data": map[string]string{"channel": "unsub"}})
		w.ping()
		publish(t, m.Addr, app, "unsub", "late", "x", "")
		publish(t, m.Addr, app, "unsub-marker", "marker", "", "")
		noneOf(t, w.until("marker", "unsub-marker"), "event after unsubscribe", isEvent("late", "unsub"))
	})
}

// TestActivityTimeout checks server liveness (§3.4) with 1 s timeouts.
func TestActivityTimeout(t *testing.T) {
	t.Parallel()
	app := cred{"1", "key1", "secret1"}
	cfg := testConfig(appsJSON(appJSON(app, "", "")))
	cfg.ActivityTimeout, cfg.PongTimeout = time.Second, time.Second
	m := startMain(t, cfg)

	t.Run("SilentClientIsPingedThenClosed", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		w := dialRaw(t, m.Addr, "/app/"+app.Key+"?protocol=7")
		est := w.next()
		var d struct {
			ActivityTimeout int `json:"activity_timeout"`
		}
		est.decodeData(t, &d)
		if d.ActivityTimeout != 1 {
			t.Fatalf("activity_timeout = %d, want 1", d.ActivityTimeout)
		}
		select {
		case f, ok := <-w.frames:
			if !ok || f.Event != "pusher:ping" {
				t.Fatalf("want pusher:ping, got %v (open %v)", f, ok)
			}
			var data string
			if json.Unmarshal(f.Data, &data) != nil || data != "{}" {
				t.Fatalf(`ping frame %s: want {"event":"pusher:ping","data":"{}"}`, f)
			}
		case <-time.After(2500*time.Millisecond - time.Since(start)):
			t.Fatal("no pusher:ping within 2.5 s of silence")
		}
		pinged := time.Now()
		if early := pinged.Sub(start); early < 900*time.Millisecond {
			t.Fatalf("pinged after %v, before the 1 s activity timeout", early)
		}
		w.expectClosed(4201, 3*time.Second)
		if took := time.Since(pinged); took < 500*time.Millisecond {
			t.Fatalf("closed %v after the ping, before the pong timeout", took)
		}
	})

	t.Run("AnsweringClientStays", func(t *testing.T) {
		t.Parallel()
		w := dial(t, m.Addr, app.Key)
		w.subscribeOK("alive", "", "")
		stop := time.After(4 * time.Second)
		pings := 0
	loop:
		for {
			select {
			case f, ok := <-w.frames:
				if !ok {
					t.Fatalf("closed with code %d after %d pings although every ping was answered", w.closeCode, pings)
				}
				if f.Event == "pusher:ping" {
					pings++
					w.sendRaw(`{"event":"pusher:pong","data":{}}`)
				}
			case <-stop:
				break loop
			}
		}
		if pings < 2 {
			t.Fatalf("%d server pings in 4 s with a 1 s activity timeout, want at least 2", pings)
		}
		w.ping()
		publish(t, m.Addr, app, "alive", "still", "x", "")
		w.expectEvent("still", "alive")
	})

	t.Run("ChattyClientIsNotPinged", func(t *testing.T) {
		t.Parallel()
		w := dial(t, m.Addr, app.Key)
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			noneOf(t, w.ping(), "server ping to a client that keeps talking", isEvent("pusher:ping", ""))
			time.Sleep(300 * time.Millisecond)
		}
	})
}
