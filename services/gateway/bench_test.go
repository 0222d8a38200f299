package gateway

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldrt/herald/services/broker"
	"github.com/heraldrt/herald/tenants"
)

// BenchmarkFanout publishes one event to a channel with 1, 100 and 1,000
// local subscribers on fake transports, ephemeral and durable (in-memory
// log). Allocations per publish must not grow with the number of
// subscribers: the frame is encoded once and the same bytes are queued to
// everyone.
func BenchmarkFanout(b *testing.B) {
	for _, durable := range []bool{false, true} {
		for _, subs := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("durable=%t/subscribers=%d", durable, subs), func(b *testing.B) {
				benchmarkFanout(b, durable, subs)
			})
		}
	}
}

func benchmarkFanout(b *testing.B, durable bool, subs int) {
	app := testApp(b, "1", "key")
	if durable {
		app.Settings.Durable = []tenants.DurableRule{{Pattern: "bench"}}
		if err := app.Validate(); err != nil {
			b.Fatal(err)
		}
	}
	n := testNode(b, Config{QueueFrames: 1 << 20, QueueBytes: 1 << 30}, app)
	conns := make([]*conn, subs)
	for i := range conns {
		conns[i] = connect(b, n, "key")
		conns[i].t.discard = true
		conns[i].send(`{"event":"pusher:subscribe","data":{"channel":"bench"}}`)
	}
	for n.hub.count("1", "bench") < subs {
		time.Sleep(time.Millisecond)
	}
	pub := broker.Publication{Event: "ev", Data: []byte(`{"message":"hello world, this is a one hundred byte payload for the fan-out benchmark.."}`)}
	ctx := context.Background()
	out := make([]Outgoing, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out[0] = Outgoing{Channel: "bench", Pub: pub}
		if err := n.Publish(ctx, app, out); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*subs)/b.Elapsed().Seconds(), "deliveries/s")
	for _, cn := range conns {
		cn.hangUp()
	}
}

// count returns the channel's local subscription count.
func (h *hub) count(appID, channel string) int {
	k := channelKey{appID, channel}
	sh := h.shard(k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return len(sh.channels[k])
}

// BenchmarkCatchUp1000 measures a resume that replays 1,000 missed events
// from the (in-memory) log to one subscriber: read, encode and queue, up to
// the subscriber going live.
func BenchmarkCatchUp1000(b *testing.B) {
	n, _, _ := durableNode(b, Config{QueueFrames: 1 << 20, QueueBytes: 1 << 30}, 5000)
	publishN(b, n, "durable-a", 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c := connect(b, n, "key")
		c.t.discard = true
		c.send(`{"event":"herald:resume","data":{"channel":"durable-a","epoch":"","seq":0}}`)
		c.send(`{"event":"pusher:subscribe","data":{"channel":"durable-a"}}`)
		c.send(`{"event":"pusher:ping","data":{}}`) // handled after the replay
		for {
			c.t.mu.Lock()
			done := bytes.Contains(c.t.last, []byte("pusher:pong"))
			c.t.mu.Unlock()
			if done {
				break
			}
			time.Sleep(20 * time.Microsecond)
		}
		b.StopTimer()
		c.hangUp()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/resume")
}
