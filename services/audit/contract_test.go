package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMemoryLog(t *testing.T) {
	testLog(t, func(t *testing.T) Log { return NewMemoryLog() })
}

// testLog is the contract every Log of this package keeps, as an
// AnchorStore too. newLog returns an empty log of its own.
func testLog(t *testing.T, newLog func(t *testing.T) Log) {
	ctx := context.Background()

	t.Run("append links the chain", func(t *testing.T) {
		l := newLog(t)
		at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
		first := mustAppend(t, l, Entry{
			Chain: "t1", Actor: "operator", Action: "key.create", Time: at, Target: "key:k1",
			Details: map[string]string{"kid": "k1"},
			// Append sets these whatever the caller says.
			Seq: 99, PrevHash: "forged", Hash: "forged",
		})
		if first.Seq != 1 || first.PrevHash != GenesisHash {
			t.Errorf("first entry has seq %d, prev_hash %s; want 1 and the genesis hash", first.Seq, first.PrevHash)
		}
		if want := time.Date(2026, 3, 1, 11, 0, 0, 123456000, time.UTC); !first.Time.Equal(want) || first.Time.Location() != time.UTC {
			t.Errorf("time %v, want %v: UTC, to the microsecond", first.Time, want)
		}
		if h, err := hashEntry(first); err != nil || h != first.Hash {
			t.Errorf("hash %s, recomputed %s (%v)", first.Hash, h, err)
		}

		before := time.Now().Truncate(time.Microsecond)
		second := mustAppend(t, l, Entry{Chain: "t1", Actor: "operator", Action: "key.revoke"})
		if second.Seq != 2 || second.PrevHash != first.Hash {
			t.Errorf("second entry has seq %d, prev_hash %s; want 2 linked to %s", second.Seq, second.PrevHash, first.Hash)
		}
		if second.Time.Before(before) || second.Time.After(time.Now()) || second.Time.Location() != time.UTC ||
			second.Time.Nanosecond()%1000 != 0 {
			t.Errorf("time of an entry without one: %v, want now, UTC, to the microsecond", second.Time)
		}
		if got := walkAll(t, l, "t1"); !sameEntries(got, []Entry{first, second}) {
			t.Errorf("walk = %v\nwant what Append returned: %v", got, []Entry{first, second})
		}
	})

	t.Run("invalid entries are refused", func(t *testing.T) {
		l := newLog(t)
		valid := Entry{Chain: "t1", Actor: "operator", Action: "key.create"}
		for name, change := range map[string]func(e *Entry){
			"no chain":            func(e *Entry) { e.Chain = "" },
			"no actor":            func(e *Entry) { e.Actor = "" },
			"no action":           func(e *Entry) { e.Action = "" },
			"invalid UTF-8":       func(e *Entry) { e.Target = "key:\xff" },
			"NUL":                 func(e *Entry) { e.Reason = "a\x00b" },
			"NUL in a detail":     func(e *Entry) { e.Details = map[string]string{"k": "\x00"} },
			"bad UTF-8 in a name": func(e *Entry) { e.Details = map[string]string{"\xc3": "v"} },
			"year 10000":          func(e *Entry) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		} {
			e := valid
			change(&e)
			if _, err := l.Append(ctx, e); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: Append = %v, want ErrInvalid", name, err)
			}
		}
		if chains, err := l.Chains(ctx); err != nil || len(chains) != 0 {
			t.Errorf("chains after refused appends = %v, %v; want none", chains, err)
		}
	})

	t.Run("details are copied", func(t *testing.T) {
		l := newLog(t)
		d := map[string]string{"event": "news", "payload_sha256": strings.Repeat("ab", 32)}
		e := mustAppend(t, l, Entry{Chain: "t1", Actor: "operator", Action: "broadcast.send", Details: d})
		d["event"] = "changed by the caller"
		e.Details["event"] = "changed through the result"
		listed := mustList(t, l, Filter{Chain: "t1"})
		if got := listed[0].Details["event"]; got != "news" {
			t.Errorf("stored details changed with the caller's map: event %q", got)
		}
		listed[0].Details["event"] = "changed through a listing"
		if got := walkAll(t, l, "t1")[0].Details["event"]; got != "news" {
			t.Errorf("stored details changed with a listed entry: event %q", got)
		}
		empty := mustAppend(t, l, Entry{Chain: "t1", Actor: "operator", Action: "x", Details: map[string]string{}})
		if empty.Details != nil || walkAll(t, l, "t1")[1].Details != nil {
			t.Errorf("empty details come back as %#v, want nil", empty.Details)
		}
	})

	t.Run("list filters and pages", func(t *testing.T) {
		l := newLog(t)
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		actions := []string{"key.create", "key.revoke", "policy.replace"}
		for i := range 30 {
			mustAppend(t, l, Entry{
				Chain: "t1", Time: base.Add(time.Duration(i) * time.Minute),
				Actor: fmt.Sprintf("user:%d", i%3), AppID: fmt.Sprintf("a%d", i%2), Action: actions[i%3],
			})
			mustAppend(t, l, Entry{Chain: "t2", Actor: "user:0", AppID: "a0", Action: "key.create"})
		}
		// span returns the seqs from to down to from, newest first, whose entry
		// index (seq-1) keep accepts; all of them when keep is nil.
		span := func(from, to int64, keep func(i int) bool) []int64 {
			var out []int64
			for s := to; s >= from; s-- {
				if keep == nil || keep(int(s-1)) {
					out = append(out, s)
				}
			}
			return out
		}
		timeOf := func(seq int64) time.Time { return base.Add(time.Duration(seq-1) * time.Minute) }
		for _, c := range []struct {
			name string
			f    Filter
			want []int64
		}{
			{"all, newest first", Filter{Chain: "t1"}, span(1, 30, nil)},
			{"limit", Filter{Chain: "t1", Limit: 5}, span(26, 30, nil)},
			{"next page", Filter{Chain: "t1", Limit: 5, Before: 26}, span(21, 25, nil)},
			{"last page", Filter{Chain: "t1", Limit: 5, Before: 3}, span(1, 2, nil)},
			{"past the start", Filter{Chain: "t1", Before: 1}, nil},
			{"app", Filter{Chain: "t1", AppID: "a1"}, span(1, 30, func(i int) bool { return i%2 == 1 })},
			{"actor", Filter{Chain: "t1", Actor: "user:2"}, span(1, 30, func(i int) bool { return i%3 == 2 })},
			{"action prefix", Filter{Chain: "t1", ActionPrefix: "key."}, span(1, 30, func(i int) bool { return i%3 != 2 })},
			{"whole action", Filter{Chain: "t1", ActionPrefix: "key.revoke"}, span(1, 30, func(i int) bool { return i%3 == 1 })},
			{"% is literal", Filter{Chain: "t1", ActionPrefix: "key%"}, nil},
			{"_ is literal", Filter{Chain: "t1", ActionPrefix: "key_"}, nil},
			{"since and until", Filter{Chain: "t1", Since: timeOf(11), Until: timeOf(21)}, span(11, 20, nil)},
			{"since is inclusive to the nanosecond", Filter{Chain: "t1", Since: timeOf(11).Add(time.Nanosecond)}, span(12, 30, nil)},
			{"until is exclusive to the nanosecond", Filter{Chain: "t1", Until: timeOf(20).Add(time.Nanosecond)}, span(1, 20, nil)},
			{"since in another zone", Filter{Chain: "t1", Since: timeOf(29).In(time.FixedZone("X", -5*3600))}, span(29, 30, nil)},
			{"everything at once", Filter{Chain: "t1", AppID: "a0", ActionPrefix: "key", Actor: "user:1", Before: 29, Limit: 2},
				span(1, 28, func(i int) bool { return i%6 == 4 })[:2]},
			{"max limit", Filter{Chain: "t2", Limit: MaxLimit}, span(1, 30, nil)},
			{"no such chain", Filter{Chain: "t3"}, nil},
		} {
			got := mustList(t, l, c.f)
			var have []int64
			for _, e := range got {
				if e.Chain != c.f.Chain {
					t.Errorf("%s: listed an entry of chain %s", c.name, e.Chain)
				}
				have = append(have, e.Seq)
			}
			if !slices.Equal(have, c.want) {
				t.Errorf("%s: seqs %v, want %v", c.name, have, c.want)
			}
		}

		// Paging through with the cursor visits every entry once.
		var paged []int64
		for f := (Filter{Chain: "t1", Limit: 7}); ; {
			page := mustList(t, l, f)
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				paged = append(paged, e.Seq)
			}
			f.Before = page[len(page)-1].Seq
		}
		if want := span(1, 30, nil); !slices.Equal(paged, want) {
			t.Errorf("paged through %v, want %v", paged, want)
		}

		for name, f := range map[string]Filter{
			"no chain":       {},
			"limit too big":  {Chain: "t1", Limit: MaxLimit + 1},
			"negative limit": {Chain: "t1", Limit: -1},
			"negative seq":   {Chain: "t1", Before: -1},
		} {
			if _, err := l.List(ctx, f); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: List = %v, want ErrInvalid", name, err)
			}
		}
	})

	t.Run("list returns whole entries", func(t *testing.T) {
		l := newLog(t)
		e := mustAppend(t, l, Entry{
			Chain: "t1", Actor: "user:alice@example.com", ActorIP: "2001:db8::1", TenantID: "t1", AppID: "app1",
			Action: "broadcast.send", Target: "news", Reason: "maintenance <window> & \"so on\" é 😀",
			Details: map[string]string{"event": "e", "channels": "a,b", "payload_sha256": strings.Repeat("0f", 32), "reached": "3"},
		})
		if got := mustList(t, l, Filter{Chain: "t1"}); !sameEntries(got, []Entry{e}) {
			t.Errorf("list = %v\nwant %v", got, e)
		}
	})

	t.Run("chains are independent", func(t *testing.T) {
		l := newLog(t)
		if chains, err := l.Chains(ctx); err != nil || len(chains) != 0 {
			t.Fatalf("chains of an empty log = %v, %v", chains, err)
		}
		for i := range 3 {
			for _, chain := range []string{"t2", PlatformChain, "t1"} {
				if e := mustAppend(t, l, Entry{Chain: chain, Actor: "operator", Action: "x"}); e.Seq != int64(i+1) {
					t.Errorf("chain %s: append %d got seq %d", chain, i+1, e.Seq)
				}
			}
		}
		chains, err := l.Chains(ctx)
		if want := []string{"platform", "t1", "t2"}; err != nil || !slices.Equal(chains, want) {
			t.Errorf("chains = %v, %v; want %v", chains, err, want)
		}
		firsts := map[string]bool{}
		for _, chain := range chains {
			entries := walkAll(t, l, chain)
			firsts[entries[0].Hash] = true
			for _, e := range entries {
				if e.Chain != chain {
					t.Errorf("walk of %s returned an entry of %s", chain, e.Chain)
				}
			}
			mustIntact(t, l, chain, 3, nil, nil)
		}
		if len(firsts) != 3 {
			t.Errorf("the first entries of different chains share a hash")
		}
	})

	t.Run("walk stops at fn's error", func(t *testing.T) {
		l := newLog(t)
		for range 5 {
			mustAppend(t, l, Entry{Chain: "t1", Actor: "operator", Action: "x"})
		}
		stop := errors.New("stop")
		var seen int
		err := l.Walk(ctx, "t1", func(e Entry) error {
			seen++
			if e.Seq == 3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || seen != 3 {
			t.Errorf("walk = %v after %d entries, want stop after 3", err, seen)
		}
		if err := l.Walk(ctx, "nothing", func(Entry) error { return stop }); err != nil {
			t.Errorf("walk of a chain without entries = %v", err)
		}
	})

	t.Run("concurrent appends to one chain", func(t *testing.T) {
		l := newLog(t)
		const n = 20
		var wg sync.WaitGroup
		got := make([]int64, n)
		for i := range n {
			wg.Go(func() {
				e, err := l.Append(ctx, Entry{Chain: "t1", Actor: fmt.Sprintf("user:%d", i), Action: "x"})
				if err != nil {
					t.Error(err)
				}
				got[i] = e.Seq
			})
		}
		wg.Wait()
		slices.Sort(got)
		if want := seqs(n); !slices.Equal(got, want) {
			t.Errorf("seqs given out %v, want %v", got, want)
		}
		mustIntact(t, l, "t1", n, nil, nil)
	})

	t.Run("anchors", func(t *testing.T) {
		l := newLog(t)
		store := l.(AnchorStore)
		pub, priv := newKey(t)
		var heads []string
		for range 5 {
			heads = append(heads, mustAppend(t, l, Entry{Chain: "t1", Actor: "operator", Action: "x"}).Hash)
		}
		for _, seq := range []int64{5, 3} {
			if err := store.AppendAnchor(ctx, SignAnchor(priv, "t1", seq, heads[seq-1])); err != nil {
				t.Fatal(err)
			}
		}
		anchors, err := store.Anchors(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		want := []Anchor{SignAnchor(priv, "t1", 3, heads[2]), SignAnchor(priv, "t1", 5, heads[4])}
		if !reflect.DeepEqual(anchors, want) {
			t.Errorf("anchors = %v, want %v (in seq order)", anchors, want)
		}
		mustIntact(t, l, "t1", 5, anchors, pub)

		if err := store.AppendAnchor(ctx, SignAnchor(priv, "t1", 5, heads[4])); !errors.Is(err, ErrAnchorExists) {
			t.Errorf("a second anchor at seq 5: %v, want ErrAnchorExists", err)
		}
		good := SignAnchor(priv, "t1", 1, heads[0])
		for name, change := range map[string]func(a *Anchor){
			"no chain":         func(a *Anchor) { a.Chain = "" },
			"seq 0":            func(a *Anchor) { a.Seq = 0 },
			"head not hex":     func(a *Anchor) { a.Head = strings.Repeat("z", 64) },
			"head upper case":  func(a *Anchor) { a.Head = strings.ToUpper(a.Head) },
			"short head":       func(a *Anchor) { a.Head = a.Head[:62] },
			"short signature":  func(a *Anchor) { a.Signature = a.Signature[:10] },
			"NUL in the chain": func(a *Anchor) { a.Chain = "t\x001" },
		} {
			a := good
			change(&a)
			if err := store.AppendAnchor(ctx, a); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: AppendAnchor = %v, want ErrInvalid", name, err)
			}
		}
		if other, err := store.Anchors(ctx, "t2"); err != nil || len(other) != 0 {
			t.Errorf("anchors of another chain = %v, %v", other, err)
		}
	})
}

// seqs returns 1 to n.
func seqs(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

func mustAppend(t *testing.T, l Log, e Entry) Entry {
	t.Helper()
	out, err := l.Append(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustList(t *testing.T, l Log, f Filter) []Entry {
	t.Helper()
	out, err := l.List(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func walkAll(t *testing.T, l Log, chain string) []Entry {
	t.Helper()
	var out []Entry
	if err := l.Walk(context.Background(), chain, func(e Entry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// mustIntact verifies chain and fails the test unless it is intact with n
// entries.
func mustIntact(t *testing.T, l Log, chain string, n int, anchors []Anchor, pub ed25519.PublicKey) Report {
	t.Helper()
	r, err := Verify(context.Background(), l, chain, anchors, pub)
	if err != nil {
		t.Fatal(err)
	}
	if r.FirstBroken != 0 || r.Problem != "" || r.Entries != n || r.Chain != chain {
		t.Fatalf("verify %s = %+v, want intact with %d entries", chain, r, n)
	}
	return r
}

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// sameEntries compares entries field by field, times as instants in UTC.
func sameEntries(a, b []Entry) bool {
	return slices.EqualFunc(a, b, func(x, y Entry) bool {
		if !x.Time.Equal(y.Time) || x.Time.Location() != time.UTC || y.Time.Location() != time.UTC {
			return false
		}
		x.Time, y.Time = time.Time{}, time.Time{}
		return reflect.DeepEqual(x, y)
	})
}
