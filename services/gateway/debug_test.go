package gateway

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/services/broker"
	"github.com/heraldrt/herald/services/protocol"
)

// debugEntries returns the debug stream entries c received.
func debugEntries(t *testing.T, c *conn) []debugEntry {
	t.Helper()
	var out []debugEntry
	for _, e := range c.t.events(t) {
		if e["event"] != debugEventName {
			continue
		}
		if e["channel"] != protocol.DebugChannel {
			t.Fatalf("a debug entry on %v", e["channel"])
		}
		var d debugEntry
		if err := json.Unmarshal([]byte(e["data"].(string)), &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func waitDebug(t *testing.T, c *conn, typ string) debugEntry {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		for _, d := range debugEntries(t, c) {
			if d.Type == typ {
				return d
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s entry in the debug stream: %+v", typ, debugEntries(t, c))
	return debugEntry{}
}

// The debug stream opens only with the console's token for that very
// connection and app, and then carries the app's publishes, client events,
// subscriptions and refusals; another app's stream carries none of them.
func TestDebugStream(t *testing.T) {
	key := []byte("debug-key-for-tests")
	a, b := testApp(t, "1", "key"), testApp(t, "2", "other")
	n := testNode(t, Config{DebugKey: key}, a, b)
	watcher, otherWatcher := connect(t, n, "key"), connect(t, n, "other")

	subscribe := func(c *conn, token string) {
		c.send(fmt.Sprintf(`{"event":"pusher:subscribe","data":{"channel":%q,"auth":%q}}`, protocol.DebugChannel, token))
	}
	// No token, a token of another connection, another app's token.
	for _, token := range []string{"", DebugToken(key, "1", "1.2"), DebugToken(key, "2", watcher.c.SocketID()), DebugToken([]byte("wrong"), "1", watcher.c.SocketID())} {
		subscribe(watcher, token)
		if e := watcher.t.waitEvent(t, "pusher:subscription_error"); e["channel"] != protocol.DebugChannel {
			t.Fatalf("refusal: %v", e)
		}
		watcher.t.mu.Lock()
		watcher.t.frames = nil
		watcher.t.mu.Unlock()
	}
	subscribe(watcher, DebugToken(key, "1", watcher.c.SocketID()))
	watcher.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	subscribe(otherWatcher, DebugToken(key, "2", otherWatcher.c.SocketID()))
	otherWatcher.t.waitEvent(t, "pusher_internal:subscription_succeeded")

	client := connect(t, n, "key")
	waitDebug(t, watcher, "connected")
	client.send(`{"event":"pusher:subscribe","data":{"channel":"news"}}`)
	if d := waitDebug(t, watcher, "subscribed"); d.Channel != "news" || d.SocketID != client.c.SocketID() {
		t.Errorf("subscribed entry: %+v", d)
	}
	if err := publishTo(n, "1", "news", broker.Publication{Event: "flash", Data: []byte(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	if d := waitDebug(t, watcher, "api_message"); d.Channel != "news" || d.Event != "flash" || d.Data != `{"x":1}` {
		t.Errorf("api_message entry: %+v", d)
	}
	client.send(`{"event":"pusher:subscribe","data":{"channel":"private-x","auth":"bad:token"}}`)
	if d := waitDebug(t, watcher, "subscription_error"); d.Channel != "private-x" || !strings.Contains(d.Message, "auth") {
		t.Errorf("subscription_error entry: %+v", d)
	}
	// Big payloads are cut.
	if err := publishTo(n, "1", "news", broker.Publication{Event: "big", Data: []byte(strings.Repeat("é", 3000))}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if entries := debugEntries(t, watcher); entries[len(entries)-1].Event == "big" {
			if d := entries[len(entries)-1]; len(d.Data) > maxDebugData+4 || !strings.HasSuffix(d.Data, "…") {
				t.Errorf("a big payload was not cut: %d bytes", len(d.Data))
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, d := range debugEntries(t, otherWatcher) {
		if d.SocketID == client.c.SocketID() || d.Channel == "news" {
			t.Errorf("app 2's stream carried app 1's %+v", d)
		}
	}
	// Nobody may publish to the stream through the API's channel rules.
	if protocol.ValidChannelName(protocol.DebugChannel) {
		t.Error("the debug channel is a valid channel name for apps")
	}
}

// Without a watcher nothing is published to the stream.
func TestDebugStreamQuietWhenUnwatched(t *testing.T) {
	n := testNode(t, Config{DebugKey: []byte("k")}, testApp(t, "1", "key"))
	if n.debugWatched("1") {
		t.Fatal("an app nobody watches is watched")
	}
	listener := connect(t, n, "key")
	listener.send(`{"event":"pusher:subscribe","data":{"channel":"news"}}`)
	listener.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	if err := publishTo(n, "1", "news", broker.Publication{Event: "flash", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	listener.t.waitEvent(t, "flash")
	if got := listener.t.count(t, debugEventName); got != 0 {
		t.Errorf("%d debug entries reached an ordinary subscriber", got)
	}
}
