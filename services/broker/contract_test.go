package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestMemoryBroker(t *testing.T) {
	testBroker(t, func(t *testing.T) Broker {
		b := NewMemory()
		t.Cleanup(func() { b.Close() })
		return b
	})
}

// testBroker is the contract every Broker keeps. newB returns a broker of
// its own (not sharing channels with any other), not yet Run.
func testBroker(t *testing.T, newB func(t *testing.T) Broker) {
	ctx := context.Background()

	t.Run("publications arrive in order with every field", func(t *testing.T) {
		b, rec := runBroker(t, newB)
		mustOK(t, b.Subscribe(ctx, "app1", "chat"))
		const n = 200
		want := make([]got, 0, n)
		for i := range n {
			p := Publication{Event: "e", Data: fmt.Appendf(nil, `{"i":%d,"s":"é\"\n<"}`, i)}
			if i%3 == 0 {
				p.ExcludeSocketID = "123.456"
			}
			if i%5 == 0 {
				p.UserID = "u-1"
			}
			if i%2 == 0 {
				p.Seq, p.Epoch = uint64(i+1), "ep1"
			}
			mustOK(t, b.Publish(ctx, "app1", "chat", &p))
			want = append(want, got{app: "app1", channel: "chat", pub: p})
		}
		if have := rec.waitPubs(t, n); !slices.EqualFunc(have, want, gotEqual) {
			t.Fatalf("delivered out of order or altered:\nhave %v\nwant %v", have, want)
		}
	})

	t.Run("empty data survives", func(t *testing.T) {
		b, rec := runBroker(t, newB)
		mustOK(t, b.Subscribe(ctx, "app1", "c"))
		mustOK(t, b.Publish(ctx, "app1", "c", &Publication{Event: "e"}))
		if have := rec.waitPubs(t, 1); len(have[0].pub.Data) != 0 || have[0].pub.Event != "e" {
			t.Fatalf("got %v", have[0])
		}
	})

	t.Run("delivery only while subscribed", func(t *testing.T) {
		b, rec := runBroker(t, newB)
		// The sentinel channel stays subscribed; once its publication
		// arrives, anything published before it on the single node would
		// have arrived too.
		// A publication may still be on its way when Unsubscribe is
		// called, so the test waits for each sentinel before going on.
		mustOK(t, b.Subscribe(ctx, "app1", "sentinel"))
		sentinel := func(i int) {
			t.Helper()
			mustOK(t, b.Publish(ctx, "app1", "sentinel", &Publication{Event: fmt.Sprint(i)}))
			rec.waitFor(t, "sentinel "+fmt.Sprint(i), func(p []got, _ []Control) bool {
				return slices.ContainsFunc(p, func(g got) bool { return g.channel == "sentinel" && g.pub.Event == fmt.Sprint(i) })
			})
		}
		mustOK(t, b.Publish(ctx, "app1", "room", &Publication{Event: "before"}))
		sentinel(1)
		mustOK(t, b.Subscribe(ctx, "app1", "room"))
		mustOK(t, b.Publish(ctx, "app1", "room", &Publication{Event: "during"}))
		sentinel(2)
		mustOK(t, b.Unsubscribe(ctx, "app1", "room"))
		mustOK(t, b.Publish(ctx, "app1", "room", &Publication{Event: "after"}))
		sentinel(3)
		have, _ := rec.snapshot()
		var room []string
		for _, g := range have {
			if g.channel == "room" {
				room = append(room, g.pub.Event)
			}
		}
		if !slices.Equal(room, []string{"during"}) {
			t.Fatalf("room got %v, want only [during]", room)
		}
		// Unsubscribing what is not subscribed is harmless.
		mustOK(t, b.Unsubscribe(ctx, "app1", "never"))
	})

	t.Run("same channel name in two apps never crosses", func(t *testing.T) {
		b, rec := runBroker(t, newB)
		mustOK(t, b.Subscribe(ctx, "app1", "presence-room"))
		mustOK(t, b.Publish(ctx, "app2", "presence-room", &Publication{Event: "for-app2"}))
		mustOK(t, b.Publish(ctx, "app1", "presence-room", &Publication{Event: "for-app1"}))
		mustOK(t, b.Subscribe(ctx, "app2", "presence-room"))
		mustOK(t, b.Publish(ctx, "app2", "presence-room", &Publication{Event: "for-app2"}))
		have := rec.waitPubs(t, 2)
		for _, g := range have {
			if g.pub.Event != "for-"+g.app || g.channel != "presence-room" {
				t.Fatalf("crossed apps: %v", g)
			}
		}
		if have[0].app == have[1].app {
			t.Fatalf("want one publication per app, got %v", have)
		}
		rec.expectNoMore(t, 2)
	})

	t.Run("control messages reach the node", func(t *testing.T) {
		b, rec := runBroker(t, newB)
		want := []Control{
			{Kind: TerminateUser, AppID: "app1", UserID: "u1"},
			{Kind: InvalidateApp, AppID: "app2"},
		}
		for _, c := range want {
			mustOK(t, b.PublishControl(ctx, c))
		}
		if have := rec.waitCtls(t, 2); !slices.Equal(have, want) {
			t.Fatalf("control: have %v, want %v", have, want)
		}
	})

	t.Run("concurrent publishers keep per-channel order", func(t *testing.T) {
		b, rec := runBroker(t, newB)
		const chans, n = 4, 50
		for c := range chans {
			mustOK(t, b.Subscribe(ctx, "app1", fmt.Sprint("c", c)))
		}
		var wg sync.WaitGroup
		for c := range chans {
			wg.Go(func() {
				for i := range n {
					if err := b.Publish(ctx, "app1", fmt.Sprint("c", c), &Publication{Event: fmt.Sprint(i)}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		next := map[string]int{}
		for _, g := range rec.waitPubs(t, chans*n) {
			if g.pub.Event != fmt.Sprint(next[g.channel]) {
				t.Fatalf("%s: got event %s, want %d", g.channel, g.pub.Event, next[g.channel])
			}
			next[g.channel]++
		}
	})

	t.Run("ready, then closed", func(t *testing.T) {
		b, _ := runBroker(t, newB)
		mustOK(t, b.Ready(ctx))
		mustOK(t, b.Close())
		if err := b.Publish(ctx, "app1", "c", &Publication{}); !errors.Is(err, ErrClosed) {
			t.Errorf("Publish after Close: %v", err)
		}
		if err := b.PublishControl(ctx, Control{Kind: InvalidateApp, AppID: "app1"}); !errors.Is(err, ErrClosed) {
			t.Errorf("PublishControl after Close: %v", err)
		}
		if err := b.Subscribe(ctx, "app1", "c"); !errors.Is(err, ErrClosed) {
			t.Errorf("Subscribe after Close: %v", err)
		}
		if err := b.Ready(ctx); err == nil {
			t.Error("Ready after Close: nil")
		}
	})
}

// runBroker makes a broker with newB, runs it with a recorder and waits
// until it is ready.
func runBroker(t *testing.T, newB func(t *testing.T) Broker) (Broker, *recorder) {
	t.Helper()
	b := newB(t)
	rec := newRecorder()
	mustOK(t, b.Run(rec))
	waitReady(t, b)
	return b, rec
}

func waitReady(t *testing.T, b Broker) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := b.Ready(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker not ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// got is one delivered publication.
type got struct {
	app, channel string
	pub          Publication
}

func (g got) String() string {
	return fmt.Sprintf("%s/%s %s %q x=%q u=%q seq=%s:%d", g.app, g.channel, g.pub.Event, g.pub.Data, g.pub.ExcludeSocketID, g.pub.UserID, g.pub.Epoch, g.pub.Seq)
}

func gotEqual(a, b got) bool {
	return a.app == b.app && a.channel == b.channel && a.pub.Event == b.pub.Event &&
		string(a.pub.Data) == string(b.pub.Data) && a.pub.ExcludeSocketID == b.pub.ExcludeSocketID &&
		a.pub.UserID == b.pub.UserID && a.pub.Seq == b.pub.Seq && a.pub.Epoch == b.pub.Epoch
}

// recorder is a Handler that keeps what it is given.
type recorder struct {
	mu      sync.Mutex
	pubs    []got
	ctls    []Control
	changed chan struct{} // signalled after each delivery
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) HandlePublication(appID, channel string, pub *Publication) {
	r.mu.Lock()
	r.pubs = append(r.pubs, got{appID, channel, *pub})
	r.mu.Unlock()
	r.signal()
}

func (r *recorder) HandleControl(c Control) {
	r.mu.Lock()
	r.ctls = append(r.ctls, c)
	r.mu.Unlock()
	r.signal()
}

func (r *recorder) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() ([]got, []Control) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pubs), slices.Clone(r.ctls)
}

// waitFor waits until cond holds for what was delivered.
func (r *recorder) waitFor(t *testing.T, what string, cond func(pubs []got, ctls []Control) bool) ([]got, []Control) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		pubs, ctls := r.snapshot()
		if cond(pubs, ctls) {
			return pubs, ctls
		}
		select {
		case <-r.changed:
		case <-timeout:
			t.Fatalf("timed out waiting for %s; have %d publications %v and controls %v", what, len(pubs), pubs, ctls)
		}
	}
}

func (r *recorder) waitPubs(t *testing.T, n int) []got {
	t.Helper()
	pubs, _ := r.waitFor(t, fmt.Sprint(n, " publications"), func(p []got, _ []Control) bool { return len(p) >= n })
	return pubs
}

func (r *recorder) waitCtls(t *testing.T, n int) []Control {
	t.Helper()
	_, ctls := r.waitFor(t, fmt.Sprint(n, " controls"), func(_ []got, c []Control) bool { return len(c) >= n })
	return ctls
}

// expectNoMore checks that nothing beyond n publications arrives within a
// short while.
func (r *recorder) expectNoMore(t *testing.T, n int) {
	t.Helper()
	time.Sleep(50 * time.Millisecond)
	if pubs, _ := r.snapshot(); len(pubs) > n {
		t.Fatalf("unexpected publications: %v", pubs[n:])
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
