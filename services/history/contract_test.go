package history

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"
)

// testStore is the contract every Store keeps. newStore returns an empty
// store of its own, closed when the test ends.
func testStore(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("appends number each channel from 1", func(t *testing.T) {
		s := newStore(t)
		before := time.Now()
		pos := mustAppend(t, s,
			ev("a", "x", "e1"), ev("a", "y", "e2"), ev("a", "x", "e3"), ev("a", "y", "e4"), ev("a", "x", "e5"))
		if got := seqs(pos); !slices.Equal(got, []uint64{1, 1, 2, 2, 3}) {
			t.Fatalf("seqs %v, want x 1..3 and y 1..2 in slice order", got)
		}
		epochX, epochY := pos[0].Epoch, pos[1].Epoch
		for _, e := range []string{epochX, epochY} {
			if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(e) {
				t.Errorf("epoch %q, want 16 lowercase hex digits", e)
			}
		}
		if epochX == epochY || pos[2].Epoch != epochX || pos[3].Epoch != epochY || pos[4].Epoch != epochX {
			t.Errorf("epochs %v: want one per channel, different channels different", pos)
		}
		pos = mustAppend(t, s, ev("a", "x", "e6"))
		if pos[0] != (Position{epochX, 4}) {
			t.Errorf("next append got %v, want %s/4", pos[0], epochX)
		}

		page := mustRead(t, s, "a", "x", 0, 10)
		if page.Epoch != epochX || page.Head != 4 || page.Oldest != 1 || len(page.Events) != 4 {
			t.Fatalf("page %+v, want epoch %s, head 4, oldest 1 and 4 events", page, epochX)
		}
		for i, e := range page.Events {
			if want := []string{"e1", "e3", "e5", "e6"}[i]; e.Seq != uint64(i+1) || e.Event != want ||
				string(e.Data) != want+"-data" || e.SocketID != "1.2" || e.UserID != "u" {
				t.Errorf("event %d: %+v, want seq %d of %s with every field", i, e, i+1, want)
			}
			if e.Time.Before(before.Add(-time.Minute)) || e.Time.After(time.Now().Add(time.Minute)) || e.Time.Location() != time.UTC {
				t.Errorf("event %d: time %v, want about now, in UTC", i, e.Time)
			}
		}
	})

	t.Run("empty data and an empty append", func(t *testing.T) {
		s := newStore(t)
		if pos, err := s.Append(ctx, nil); err != nil || len(pos) != 0 {
			t.Fatalf("Append(nil) = %v, %v", pos, err)
		}
		mustAppend(t, s, Append{AppID: "a", Channel: "x", Event: "e"})
		if page := mustRead(t, s, "a", "x", 0, 10); len(page.Events) != 1 || len(page.Events[0].Data) != 0 {
			t.Fatalf("page %+v, want one event without data", page)
		}
	})

	t.Run("a refused append commits nothing", func(t *testing.T) {
		s := newStore(t)
		for name, bad := range map[string]Append{
			"no app":           {Channel: "x", Event: "e"},
			"no channel":       {AppID: "a", Event: "e"},
			"NUL":              {AppID: "a", Channel: "x", Event: "e\x00"},
			"invalid UTF-8":    {AppID: "a", Channel: "x", Event: "e", UserID: "\xff"},
			"negative count":   {AppID: "a", Channel: "x", Event: "e", Retention: Retention{MaxEvents: -1}},
			"negative max age": {AppID: "a", Channel: "x", Event: "e", Retention: Retention{MaxAge: -time.Second}},
		} {
			if _, err := s.Append(ctx, []Append{ev("a", "x", "ok"), bad}); err == nil {
				t.Errorf("%s: Append accepted %+v", name, bad)
			}
		}
		if heads := mustHeads(t, s, ChannelKey{"a", "x"}); heads[0].Seq != 0 {
			t.Errorf("head %v after refused appends, want none", heads[0])
		}
	})

	t.Run("an append with a done ctx commits nothing", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Append(cctx, []Append{ev("a", "x", "e")}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Append = %v, want context.Canceled", err)
		}
		if heads := mustHeads(t, s, ChannelKey{"a", "x"}); heads[0].Seq != 0 {
			t.Errorf("head %v, want none", heads[0])
		}
	})

	t.Run("reads page through a channel", func(t *testing.T) {
		s := newStore(t)
		appendN(t, s, "a", "x", 10, Retention{})
		for _, c := range []struct {
			after      uint64
			limit      int
			first, end uint64 // the events read are first..end-1
		}{
			{0, 4, 1, 5}, {4, 4, 5, 9}, {8, 4, 9, 11}, {10, 4, 11, 11},
			{0, 0, 1, 2}, {3, -5, 4, 5}, // clamped up to 1
			{25, 4, 11, 11}, {math.MaxUint64, 4, 11, 11}, // after the head
		} {
			page := mustRead(t, s, "a", "x", c.after, c.limit)
			if page.Head != 10 || page.Oldest != 1 || !slices.Equal(eventSeqs(page), seqRange(c.first, c.end)) {
				t.Errorf("Read(after %d, limit %d) = head %d, oldest %d, %v; want head 10, oldest 1, %v",
					c.after, c.limit, page.Head, page.Oldest, eventSeqs(page), seqRange(c.first, c.end))
			}
		}
		page := mustRead(t, s, "a", "nothing", 0, 10)
		if page.Epoch == "" || page.Head != 0 || page.Oldest != 1 || len(page.Events) != 0 {
			t.Errorf("page of a channel without history %+v, want an epoch, head 0, oldest 1", page)
		}
		// The epoch a channel has before its first event is the one its
		// events get, and Heads agrees.
		if pos := mustAppend(t, s, ev("a", "nothing", "e")); pos[0].Epoch != page.Epoch {
			t.Errorf("first event's epoch %s, announced %s", pos[0].Epoch, page.Epoch)
		}
		if heads := mustHeads(t, s, ChannelKey{"a", "nothing"}, ChannelKey{"a", "never"}, ChannelKey{"b", "nothing"}); heads[0].Epoch != page.Epoch ||
			heads[1].Epoch == "" || heads[1].Epoch == page.Epoch || heads[2].Epoch == page.Epoch {
			t.Errorf("heads %v: want a's nothing at %s, and other epochs for the others", heads, page.Epoch)
		}
	})

	t.Run("a read returns at most 1000 events", func(t *testing.T) {
		s := newStore(t)
		appendN(t, s, "a", "x", 1001, Retention{})
		if page := mustRead(t, s, "a", "x", 0, 5000); !slices.Equal(eventSeqs(page), seqRange(1, 1001)) {
			t.Errorf("Read(limit 5000) returned %d events, want 1..1000", len(page.Events))
		}
	})

	t.Run("heads in the order asked", func(t *testing.T) {
		s := newStore(t)
		x := appendN(t, s, "a", "x", 3, Retention{})
		y := appendN(t, s, "a", "y", 1, Retention{})
		heads := mustHeads(t, s, ChannelKey{"a", "y"}, ChannelKey{"a", "none"}, ChannelKey{"a", "x"}, ChannelKey{"b", "x"}, ChannelKey{"a", "y"})
		none, bx := mustRead(t, s, "a", "none", 0, 1).Epoch, mustRead(t, s, "b", "x", 0, 1).Epoch
		if want := []Position{y, {none, 0}, x, {bx, 0}, y}; !slices.Equal(heads, want) {
			t.Errorf("heads %v, want %v", heads, want)
		}
		if heads := mustHeads(t, s); len(heads) != 0 {
			t.Errorf("heads of no channel %v", heads)
		}
	})

	t.Run("apps do not see each other's channels", func(t *testing.T) {
		s := newStore(t)
		a := appendN(t, s, "a", "chat", 3, Retention{})
		b := appendN(t, s, "b", "chat", 1, Retention{})
		if a.Seq != 3 || b.Seq != 1 || a.Epoch == b.Epoch {
			t.Fatalf("heads a %v, b %v: want 3 and 1 in different epochs", a, b)
		}
		page := mustRead(t, s, "b", "chat", 0, 10)
		if page.Head != 1 || len(page.Events) != 1 || string(page.Events[0].Data) != "b/chat/0" {
			t.Errorf("app b reads %+v, want only its own event", page)
		}
		mustAppend(t, s, Append{AppID: "b", Channel: "chat", Event: "e", Retention: Retention{MaxEvents: 1}})
		mustTrim(t, s, time.Now())
		if page := mustRead(t, s, "a", "chat", 0, 10); len(page.Events) != 3 {
			t.Errorf("app b's retention trimmed app a's channel: %+v", page)
		}
	})

	t.Run("retention by count keeps the newest events", func(t *testing.T) {
		s := newStore(t)
		appendN(t, s, "a", "x", 5, Retention{MaxEvents: 3})
		appendN(t, s, "a", "y", 5, Retention{MaxEvents: 10})
		appendN(t, s, "a", "y", 1, Retention{MaxEvents: 2}) // the newest retention applies
		appendN(t, s, "a", "z", 5, Retention{})
		mustTrim(t, s, time.Now())
		for ch, want := range map[string][]uint64{"x": {3, 4, 5}, "y": {5, 6}, "z": {1, 2, 3, 4, 5}} {
			page := mustRead(t, s, "a", ch, 0, 10)
			if !slices.Equal(eventSeqs(page), want) || page.Oldest != want[0] {
				t.Errorf("%s holds %v from %d, want %v", ch, eventSeqs(page), page.Oldest, want)
			}
		}
		if page := mustRead(t, s, "a", "x", 1, 10); !slices.Equal(eventSeqs(page), []uint64{3, 4, 5}) || page.Oldest != 3 {
			t.Errorf("a reader after 1 gets %v from %d, want 3..5 and oldest 3 to see it lost 2", eventSeqs(page), page.Oldest)
		}
	})

	t.Run("retention by age removes a prefix", func(t *testing.T) {
		s := newStore(t)
		now := time.Now()
		appendN(t, s, "a", "x", 3, Retention{MaxAge: time.Hour})
		appendN(t, s, "a", "x", 2, Retention{})
		appendN(t, s, "a", "y", 1, Retention{MaxAge: 10 * time.Hour})
		appendN(t, s, "a", "y", 1, Retention{MaxAge: time.Hour}) // expires first: 1 goes with it
		appendN(t, s, "a", "y", 1, Retention{MaxAge: 10 * time.Hour})
		appendN(t, s, "a", "z", 2, Retention{MaxAge: 3 * time.Hour})
		if n := mustTrim(t, s, now.Add(-time.Minute)); n != 0 {
			t.Errorf("Trim before anything expired removed %d", n)
		}
		if n := mustTrim(t, s, now.Add(2*time.Hour)); n != 5 {
			t.Errorf("Trim removed %d events, want 5", n)
		}
		for ch, want := range map[string][]uint64{"x": {4, 5}, "y": {3}, "z": {1, 2}} {
			page := mustRead(t, s, "a", ch, 0, 10)
			if !slices.Equal(eventSeqs(page), want) || page.Oldest != want[0] {
				t.Errorf("%s holds %v from %d, want %v", ch, eventSeqs(page), page.Oldest, want)
			}
		}
	})

	t.Run("the epoch outlives the events", func(t *testing.T) {
		s := newStore(t)
		head := appendN(t, s, "a", "x", 3, Retention{MaxAge: time.Minute})
		mustTrim(t, s, time.Now().Add(time.Hour))
		page := mustRead(t, s, "a", "x", 0, 10)
		if page.Epoch != head.Epoch || page.Head != 3 || page.Oldest != 4 || len(page.Events) != 0 {
			t.Errorf("page of an emptied channel %+v, want epoch %s, head 3, oldest 4", page, head.Epoch)
		}
		if pos := mustAppend(t, s, ev("a", "x", "e")); pos[0] != (Position{head.Epoch, 4}) {
			t.Errorf("append after the trim got %v, want %s/4", pos[0], head.Epoch)
		}
	})

	t.Run("concurrent appends get consecutive numbers in order", func(t *testing.T) {
		s := newStore(t)
		const callers, calls, per = 16, 10, 3
		got := make([][]Position, callers)
		var wg sync.WaitGroup
		for c := range callers {
			wg.Go(func() {
				for i := range calls {
					events := make([]Append, per)
					for j := range events {
						events[j] = Append{AppID: "a", Channel: "x", Event: "e", Data: fmt.Appendf(nil, "%d/%d/%d", c, i, j)}
					}
					pos, err := s.Append(ctx, events)
					if err != nil {
						t.Error(err)
						return
					}
					got[c] = append(got[c], pos...)
				}
			})
		}
		wg.Wait()
		page := readAll(t, s, "a", "x")
		if !slices.Equal(eventSeqs(page), seqRange(1, callers*calls*per+1)) {
			t.Fatalf("channel holds %v, want 1..%d", eventSeqs(page), callers*calls*per)
		}
		for c, pos := range got {
			for k, p := range pos {
				i, j := k/per, k%per
				if j > 0 && p.Seq != pos[k-1].Seq+1 {
					t.Errorf("caller %d call %d: seqs %v not consecutive", c, i, seqs(pos[k-per+1:k+1]))
				}
				if i > 0 && j == 0 && p.Seq < pos[k-1].Seq {
					t.Errorf("caller %d: call %d committed before call %d", c, i, i-1)
				}
				if want := fmt.Sprintf("%d/%d/%d", c, i, j); string(page.Events[p.Seq-1].Data) != want {
					t.Errorf("seq %d holds %s, want %s", p.Seq, page.Events[p.Seq-1].Data, want)
				}
			}
		}
	})

	t.Run("a closed store refuses every call", func(t *testing.T) {
		s := newStore(t)
		mustAppend(t, s, ev("a", "x", "e"))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, []Append{ev("a", "x", "e")}); !errors.Is(err, ErrClosed) {
			t.Errorf("Append = %v", err)
		}
		if _, err := s.Read(ctx, "a", "x", 0, 10); !errors.Is(err, ErrClosed) {
			t.Errorf("Read = %v", err)
		}
		if _, err := s.Heads(ctx, []ChannelKey{{"a", "x"}}); !errors.Is(err, ErrClosed) {
			t.Errorf("Heads = %v", err)
		}
		if _, err := s.Trim(ctx, time.Now()); !errors.Is(err, ErrClosed) {
			t.Errorf("Trim = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
	})
}

func ev(app, channel, name string) Append {
	return Append{AppID: app, Channel: channel, Event: name, Data: []byte(name + "-data"), SocketID: "1.2", UserID: "u"}
}

// appendN appends n events to one channel, one call each, and returns the
// last position. Their data is app/channel/i.
func appendN(t testing.TB, s Store, app, channel string, n int, r Retention) Position {
	t.Helper()
	var pos []Position
	for i := range n {
		pos = mustAppend(t, s, Append{AppID: app, Channel: channel, Event: "e", Data: fmt.Appendf(nil, "%s/%s/%d", app, channel, i), Retention: r})
	}
	return pos[0]
}

func mustAppend(t testing.TB, s Store, events ...Append) []Position {
	t.Helper()
	pos, err := s.Append(context.Background(), events)
	if err != nil {
		t.Fatal(err)
	}
	if len(pos) != len(events) {
		t.Fatalf("%d positions for %d events", len(pos), len(events))
	}
	return pos
}

func mustRead(t testing.TB, s Store, app, channel string, after uint64, limit int) Page {
	t.Helper()
	page, err := s.Read(context.Background(), app, channel, after, limit)
	if err != nil {
		t.Fatal(err)
	}
	return page
}

// readAll reads a whole channel, checking that its pages join up.
func readAll(t testing.TB, s Store, app, channel string) Page {
	t.Helper()
	all := mustRead(t, s, app, channel, 0, maxRead)
	for len(all.Events) > 0 && all.Events[len(all.Events)-1].Seq < all.Head {
		page := mustRead(t, s, app, channel, all.Events[len(all.Events)-1].Seq, maxRead)
		if len(page.Events) == 0 || page.Events[0].Seq != all.Events[len(all.Events)-1].Seq+1 {
			t.Fatalf("page after %d starts %v", all.Events[len(all.Events)-1].Seq, eventSeqs(page))
		}
		all.Events = append(all.Events, page.Events...)
	}
	return all
}

func mustHeads(t testing.TB, s Store, keys ...ChannelKey) []Position {
	t.Helper()
	heads, err := s.Heads(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	return heads
}

func mustTrim(t testing.TB, s Store, now time.Time) int {
	t.Helper()
	n, err := s.Trim(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func seqs(pos []Position) []uint64 {
	out := make([]uint64, len(pos))
	for i, p := range pos {
		out[i] = p.Seq
	}
	return out
}

func eventSeqs(page Page) []uint64 {
	out := []uint64{}
	for _, e := range page.Events {
		out = append(out, e.Seq)
	}
	return out
}

// seqRange returns first..end-1.
func seqRange(first, end uint64) []uint64 {
	out := []uint64{}
	for s := first; s < end; s++ {
		out = append(out, s)
	}
	return out
}
