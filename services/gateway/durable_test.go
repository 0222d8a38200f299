package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/services/broker"
	"github.com/heraldrt/herald/services/history"
	"github.com/heraldrt/herald/services/presence"
	"github.com/heraldrt/herald/services/protocol"
	"github.com/heraldrt/herald/tenants"
)

// durableNode is a node whose app "1" (key "key") has durable channels
// "durable-*" keeping at most keep events, on a log the test can write to
// directly.
func durableNode(t testing.TB, cfg Config, keep int) (*Node, *history.Memory, *tenants.App) {
	t.Helper()
	return durableNodeOn(t, cfg, keep, broker.NewMemory())
}

// durableNodeOn is durableNode on the given backplane.
func durableNodeOn(t testing.TB, cfg Config, keep int, brk broker.Broker) (*Node, *history.Memory, *tenants.App) {
	t.Helper()
	app := testApp(t, "1", "key")
	app.Settings.Durable = []tenants.DurableRule{{Pattern: "durable-*", MaxEvents: keep}}
	if err := app.Validate(); err != nil {
		t.Fatal(err)
	}
	store := tenants.NewMemoryStore()
	if err := store.PutApp(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	log := history.NewMemory()
	n, err := NewNode(cfg, Deps{Apps: store, Broker: brk, Presence: presence.NewMemory(), History: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n, log, app
}

// seqs returns, in order, the seq of every frame of event name on channel.
func (f *fakeTransport) seqs(t *testing.T, channel string) []uint64 {
	t.Helper()
	var out []uint64
	for _, e := range f.events(t) {
		if e["channel"] == channel && e["seq"] != nil && e["event"] != "pusher_internal:subscription_succeeded" {
			out = append(out, uint64(e["seq"].(float64)))
		}
	}
	return out
}

// waitSeqs waits until the client has received exactly want on channel.
func (f *fakeTransport) waitSeqs(t *testing.T, channel string, want []uint64) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := f.seqs(t, channel)
		if slices.Equal(got, want) {
			return
		}
		if len(got) > len(want) || time.Now().After(deadline) {
			t.Fatalf("seqs on %s: got %v, want %v", channel, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func publishN(t testing.TB, n *Node, channel string, count int) {
	t.Helper()
	for i := range count {
		if err := publishTo(n, "1", channel, broker.Publication{Event: "e", Data: fmt.Appendf(nil, `{"i":%d}`, i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestDurableSubscribeAndLive(t *testing.T) {
	n, _, _ := durableNode(t, Config{}, 100)
	publishN(t, n, "durable-a", 3) // before anyone listens
	a := connect(t, n, "key")
	a.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
	ok := a.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	if ok["seq"] != float64(3) || ok["epoch"] == "" || ok["epoch"] == nil {
		t.Fatalf("subscription_succeeded = %v, want epoch and seq 3", ok)
	}
	publishN(t, n, "durable-a", 2)
	a.t.waitSeqs(t, "durable-a", []uint64{4, 5})
	e := a.t.events(t)
	if last := e[len(e)-1]; last["event"] != "e" || last["data"] != `{"i":1}` {
		t.Errorf("last frame %v", last)
	}

	// An ephemeral channel has neither seq nor epoch.
	a.send(`{"event":"pusher:subscribe","data":{"channel":"plain"}}`)
	for _, f := range a.t.events(t) {
		if f["channel"] == "plain" && (f["seq"] != nil || f["epoch"] != nil) {
			t.Errorf("ephemeral frame with durable fields: %v", f)
		}
	}
}

func TestResumeBeforeSubscribe(t *testing.T) {
	n, _, _ := durableNode(t, Config{}, 100)
	a := connect(t, n, "key")
	a.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
	a.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	publishN(t, n, "durable-a", 3)
	a.t.waitSeqs(t, "durable-a", []uint64{1, 2, 3})
	// The channel's epoch, as the client learns it from a later subscription.
	b := connect(t, n, "key")
	b.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
	epoch := b.t.waitEvent(t, "pusher_internal:subscription_succeeded")["epoch"].(string)

	// a drops after seq 1 (say), misses 2..5, and comes back with a cursor.
	publishN(t, n, "durable-a", 2)
	c := connect(t, n, "key")
	c.send(fmt.Sprintf(`{"event":"herald:resume","data":{"channel":"durable-a","epoch":%q,"seq":1}}`, epoch))
	c.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
	c.t.waitSeqs(t, "durable-a", []uint64{2, 3, 4, 5})
	publishN(t, n, "durable-a", 1)
	c.t.waitSeqs(t, "durable-a", []uint64{2, 3, 4, 5, 6})
	// subscription_succeeded came first, announcing the live position: 5,
	// or less if the node had not delivered the last events yet (they then
	// came live).
	if first := c.t.events(t)[1]; first["event"] != "pusher_internal:subscription_succeeded" || first["seq"].(float64) < 3 {
		t.Errorf("frame after connection_established: %v", first)
	}
}

func TestResumeAfterSubscriptionSucceeded(t *testing.T) {
	n, _, _ := durableNode(t, Config{}, 100)
	publishN(t, n, "durable-a", 4)
	a := connect(t, n, "key")
	a.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
	epoch := a.t.waitEvent(t, "pusher_internal:subscription_succeeded")["epoch"].(string)
	a.send(fmt.Sprintf(`{"event":"herald:resume","data":{"channel":"durable-a","epoch":%q,"seq":1}}`, epoch))
	a.t.waitSeqs(t, "durable-a", []uint64{2, 3, 4})
	publishN(t, n, "durable-a", 1)
	a.t.waitSeqs(t, "durable-a", []uint64{2, 3, 4, 5})

	// Once live events went out, a late resume backfills what is older than
	// the live stream's start, each event once.
	b := connect(t, n, "key")
	b.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
	b.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	publishN(t, n, "durable-a", 1)
	b.t.waitSeqs(t, "durable-a", []uint64{6})
	b.send(fmt.Sprintf(`{"event":"herald:resume","data":{"channel":"durable-a","epoch":%q,"seq":3}}`, epoch))
	b.t.waitSeqs(t, "durable-a", []uint64{6, 4, 5})
}

func TestResumeFailures(t *testing.T) {
	n, _, _ := durableNode(t, Config{}, 3)
	publishN(t, n, "durable-a", 6) // keeps 4..6
	cases := []struct {
		name, resume, reason string
	}{
		{"another epoch", `{"channel":"durable-a","epoch":"0000000000000000","seq":5}`, "epoch_changed"},
		{"older than retention", `{"channel":"durable-a","epoch":"","seq":1}`, "expired"},
		{"ahead of the log", `{"channel":"durable-a","epoch":"","seq":60}`, "unknown_position"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, n, "key")
			c.send(`{"event":"herald:resume","data":` + tc.resume + `}`)
			c.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
			f := c.t.waitEvent(t, "herald:resume_failed")
			var d struct {
				Reason, Epoch string
				Seq           uint64
			}
			if err := json.Unmarshal([]byte(f["data"].(string)), &d); err != nil || d.Reason != tc.reason || d.Seq != 6 || d.Epoch == "" {
				t.Fatalf("resume_failed %v (%v), want reason %s at seq 6", f, err, tc.reason)
			}
			if got := c.t.seqs(t, "durable-a"); len(got) != 0 {
				t.Errorf("a refused resume replayed %v", got)
			}
		})
	}
	t.Run("bad request", func(t *testing.T) {
		c := connect(t, n, "key")
		c.send(`{"event":"herald:resume","data":{"channel":"durable-a","seq":"x"}}`)
		if e := c.t.waitEvent(t, "pusher:error"); e["data"].(map[string]any)["message"] == "" {
			t.Errorf("error without a message: %v", e)
		}
		c.send(`{"event":"pusher:subscribe","data":{"channel":"plain"}}`)
		c.t.waitEvent(t, "pusher_internal:subscription_succeeded")
		c.send(`{"event":"herald:resume","data":{"channel":"plain","epoch":"","seq":0}}`)
		c.send(`{"event":"pusher:ping","data":{}}`) // answered after the resume
		c.t.waitEvent(t, "pusher:pong")
		var msgs []string
		for _, e := range c.t.events(t) {
			if e["event"] == "pusher:error" {
				msgs = append(msgs, e["data"].(map[string]any)["message"].(string))
			}
		}
		if len(msgs) != 2 || !strings.Contains(msgs[1], "not durable") {
			t.Errorf("errors %q: want the bad request's, then one saying plain is not durable", msgs)
		}
	})
}

func TestResumeTooFarBehind(t *testing.T) {
	n, _, _ := durableNode(t, Config{}, 5000)
	publishN(t, n, "durable-a", maxReplayEvents+2)
	c := connect(t, n, "key")
	c.send(`{"event":"herald:resume","data":{"channel":"durable-a","epoch":"","seq":0}}`)
	c.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
	f := c.t.waitEvent(t, "herald:resume_failed")
	if d := f["data"].(string); d == "" || !json.Valid([]byte(d)) || !strings.Contains(d, `"reason":"too_far_behind"`) {
		t.Fatalf("resume_failed %v", f)
	}
}

// TestDurableOrderAcrossRacingPublishers hands the node events out of
// order, as two API nodes racing to the backplane would: subscribers see
// the log's order.
func TestDurableOrderAcrossRacingPublishers(t *testing.T) {
	n, log, _ := durableNode(t, Config{ReorderWait: time.Hour}, 100)
	a := connect(t, n, "key")
	a.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
	a.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	pos := appendDirect(t, log, "durable-a", 3)
	for _, i := range []int{2, 0, 1} {
		n.HandlePublication("1", "durable-a", &broker.Publication{Event: "e", Data: []byte("x"), Seq: pos[i].Seq, Epoch: pos[i].Epoch})
	}
	a.t.waitSeqs(t, "durable-a", []uint64{1, 2, 3})
	// A duplicate delivery changes nothing.
	n.HandlePublication("1", "durable-a", &broker.Publication{Event: "e", Data: []byte("x"), Seq: pos[1].Seq, Epoch: pos[1].Epoch})
	a.t.waitSeqs(t, "durable-a", []uint64{1, 2, 3})
}

// TestDurableLostEvents: the backplane drops events (a Redis restart). A
// later event reveals the gap and the node reads the missing ones from the
// log; a lost last event is found by the head check.
func TestDurableLostEvents(t *testing.T) {
	n, log, _ := durableNode(t, Config{ReorderWait: 20 * time.Millisecond, DurableCheckInterval: 30 * time.Millisecond}, 100)
	a := connect(t, n, "key")
	a.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
	a.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	pos := appendDirect(t, log, "durable-a", 3) // 1 and 2 never reach the node
	n.HandlePublication("1", "durable-a", &broker.Publication{Event: "e", Data: []byte("x"), Seq: pos[2].Seq, Epoch: pos[2].Epoch})
	a.t.waitSeqs(t, "durable-a", []uint64{1, 2, 3})

	appendDirect(t, log, "durable-a", 2) // 4 and 5, never published at all
	a.t.waitSeqs(t, "durable-a", []uint64{1, 2, 3, 4, 5})
}

func appendDirect(t *testing.T, log history.Store, channel string, count int) []history.Position {
	t.Helper()
	events := make([]history.Append, count)
	for i := range events {
		events[i] = history.Append{AppID: "1", Channel: channel, Event: "e", Data: []byte("x"), Retention: history.Retention{MaxEvents: 100}}
	}
	pos, err := log.Append(context.Background(), events)
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

// TestDurableExcludedSocket: the publisher's own socket is skipped, and its
// cursor moves on, so the next event is not held back.
func TestDurableExcludedSocket(t *testing.T) {
	n, _, _ := durableNode(t, Config{}, 100)
	a := connect(t, n, "key")
	a.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
	a.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	if err := publishTo(n, "1", "durable-a", broker.Publication{Event: "e", Data: []byte("x"), ExcludeSocketID: a.c.SocketID()}); err != nil {
		t.Fatal(err)
	}
	publishN(t, n, "durable-a", 1)
	a.t.waitSeqs(t, "durable-a", []uint64{2})
}

// TestDurableReplayIsBounded: a catch-up never overflows the client's own
// queue: it waits for the writer.
func TestDurableReplayWaitsForTheWriter(t *testing.T) {
	n, _, _ := durableNode(t, Config{QueueFrames: 40}, 1000)
	publishN(t, n, "durable-a", 300)
	c := connect(t, n, "key")
	c.send(`{"event":"herald:resume","data":{"channel":"durable-a","epoch":"","seq":0}}`)
	c.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
	c.t.waitSeqs(t, "durable-a", seqRange(1, 300))
	if n.Stats().SlowConsumers != 0 {
		t.Errorf("the replay made its client a slow consumer")
	}
}

// FuzzResume feeds herald:resume frames with arbitrary data to a
// connection subscribed to a durable channel: none may panic, and the
// connection keeps working.
func FuzzResume(f *testing.F) {
	f.Add(`{"channel":"durable-a","epoch":"","seq":1}`)
	f.Add(`"{\"channel\":\"durable-a\",\"epoch\":\"x\",\"seq\":99999999999999999999}"`)
	f.Add(`{"channel":"durable-b","seq":-1}`)
	f.Add(`{"channel":"` + string(make([]byte, 300)) + `","seq":0}`)
	f.Add(`[]`)
	n, _, _ := durableNode(f, Config{}, 100)
	publishN(f, n, "durable-a", 3)
	f.Fuzz(func(t *testing.T, data string) {
		c := connect(t, n, "key")
		defer c.hangUp()
		c.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
		c.send(`{"event":"herald:resume","data":` + data + `}`)
		c.send(`{"event":"pusher:ping","data":{}}`)
		c.t.waitEvent(t, "pusher:pong")
		if p := n.Stats().Panics; p != 0 {
			t.Fatalf("%d panics", p)
		}
	})
}

// FuzzParseEventID: whatever a browser sends as Last-Event-ID, the cursors
// read from it are valid channel names, bounded in number.
func FuzzParseEventID(f *testing.F) {
	f.Add("durable-a:5")
	f.Add("a:1 b:2 c:x :3 d: e:18446744073709551615")
	f.Add("a:b:7")
	f.Fuzz(func(t *testing.T, id string) {
		cursors := parseEventID(id)
		if len(cursors) > maxStreamChannels {
			t.Fatalf("%d cursors", len(cursors))
		}
		for ch := range cursors {
			if !protocol.ValidChannelName(ch) {
				t.Fatalf("cursor for invalid channel %q", ch)
			}
		}
	})
}

// TestDurableNodeCutOffPastRetention: events the node never delivered and
// retention removed meanwhile are reported to subscribers as a gap, not
// skipped silently, and delivery goes on.
func TestDurableNodeCutOffPastRetention(t *testing.T) {
	n, log, _ := durableNode(t, Config{DurableCheckInterval: 20 * time.Millisecond}, 3)
	a := connect(t, n, "key")
	a.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
	a.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	appendDirect(t, log, "durable-a", 2) // 1, 2: never published
	if _, err := log.Append(context.Background(), []history.Append{
		{AppID: "1", Channel: "durable-a", Event: "e", Data: []byte("x"), Retention: history.Retention{MaxEvents: 1}},
	}); err != nil { // 3, keeping only itself
		t.Fatal(err)
	}
	f := a.t.waitEvent(t, "herald:resume_failed")
	if !strings.Contains(f["data"].(string), `"reason":"expired","epoch"`) || !strings.Contains(f["data"].(string), `"seq":2`) {
		t.Errorf("gap notice %v", f)
	}
	a.t.waitSeqs(t, "durable-a", []uint64{3})
}

// refusingBroker refuses every publication, as a broker whose Redis is down.
type refusingBroker struct{ broker.Broker }

func (refusingBroker) Publish(context.Context, string, string, *broker.Publication) error {
	return errors.New("backplane down")
}

// TestPublishFailsBeforeCommitting: a request with an ephemeral channel
// fails on the backplane before anything durable is committed, so its
// retry cannot log an event twice; a durable-only request is committed and
// acknowledged even though the backplane refuses it.
func TestPublishFailsBeforeCommitting(t *testing.T) {
	n, log, app := durableNodeOn(t, Config{}, 100, refusingBroker{broker.NewMemory()})
	pub := broker.Publication{Event: "e", Data: []byte("x")}
	mixed := []Outgoing{{Channel: "durable-a", Pub: pub}, {Channel: "plain", Pub: pub}}
	if err := n.Publish(context.Background(), app, mixed); err == nil {
		t.Fatal("a publish to an ephemeral channel succeeded without a backplane")
	}
	heads, err := log.Heads(context.Background(), []history.ChannelKey{{AppID: "1", Channel: "durable-a"}})
	if err != nil || heads[0].Seq != 0 {
		t.Fatalf("the failed request committed %v (%v)", heads, err)
	}
	if err := n.Publish(context.Background(), app, []Outgoing{{Channel: "durable-a", Pub: pub}}); err != nil {
		t.Fatalf("a durable publish without a backplane: %v", err)
	}
	if heads, _ := log.Heads(context.Background(), []history.ChannelKey{{AppID: "1", Channel: "durable-a"}}); heads[0].Seq != 1 {
		t.Fatalf("heads %v after the durable publish", heads)
	}
	if n.Stats().BackplaneRefused != 1 {
		t.Errorf("refusals counted: %d", n.Stats().BackplaneRefused)
	}
}

// TestResumeCursorsAreBounded: cursors waiting for their subscribes are
// bounded by the connection's channel limit.
func TestResumeCursorsAreBounded(t *testing.T) {
	n, _, _ := durableNode(t, Config{}, 100)
	c := connect(t, n, "key")
	for i := range 101 {
		c.send(fmt.Sprintf(`{"event":"herald:resume","data":{"channel":"durable-%d","epoch":"","seq":1}}`, i))
	}
	e := c.t.waitEvent(t, "pusher:error")
	if msg := e["data"].(map[string]any)["message"].(string); !strings.Contains(msg, "at most 100 cursors") {
		t.Errorf("error %q", msg)
	}
	if got := c.t.count(t, "pusher:error"); got != 1 {
		t.Errorf("%d errors, want 1 (the 101st cursor)", got)
	}
}

// TestDurableEpochChange: events in a new epoch (a log that lost the
// channel) are announced to live subscribers, whose cursors restart there.
func TestDurableEpochChange(t *testing.T) {
	n, _, _ := durableNode(t, Config{}, 100)
	publishN(t, n, "durable-a", 2)
	a := connect(t, n, "key")
	a.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
	a.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	n.HandlePublication("1", "durable-a", &broker.Publication{Event: "e", Data: []byte("x"), Seq: 1, Epoch: "0123456789abcdef"})
	f := a.t.waitEvent(t, "herald:resume_failed")
	if d := f["data"].(string); !strings.Contains(d, `"reason":"epoch_changed","epoch":"0123456789abcdef","seq":0`) {
		t.Errorf("notice %s", d)
	}
	a.t.waitSeqs(t, "durable-a", []uint64{1})
}
