package audit

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// sliceLog walks a fixed list of entries in the order given, whatever they
// are; Verify needs nothing else of a Log.
type sliceLog struct {
	Log
	entries []Entry
}

func (s sliceLog) Walk(ctx context.Context, _ string, fn func(Entry) error) error {
	for _, e := range s.entries {
		if err := fn(e); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// testChain returns a valid chain t1 of n entries.
func testChain(t *testing.T, n int) []Entry {
	t.Helper()
	l := NewMemoryLog()
	for range n {
		mustAppend(t, l, Entry{Chain: "t1", Actor: "operator", Action: "key.create", Details: map[string]string{"kid": "k"}})
	}
	return walkAll(t, l, "t1")
}

func TestVerify_Chain(t *testing.T) {
	for _, c := range []struct {
		name    string
		change  func(es []Entry) []Entry
		seq     int64
		problem string
	}{
		{"edited detail", func(es []Entry) []Entry { es[2].Details = map[string]string{"kid": "x"}; return es },
			3, "seq 3: hash does not match its contents (edited)"},
		{"edited time", func(es []Entry) []Entry { es[1].Time = es[1].Time.Add(1); return es },
			2, "seq 2: hash does not match its contents (edited)"},
		{"edited hash", func(es []Entry) []Entry { es[5].Hash = strings.Repeat("0", 64); return es },
			6, "seq 6: hash does not match its contents (edited)"},
		{"edited prev_hash", func(es []Entry) []Entry { es[3].PrevHash = "not hex"; return es },
			4, "seq 4: prev_hash does not link to seq 3 (inserted or reordered)"},
		{"first deleted", func(es []Entry) []Entry { return es[1:] },
			1, "seq 1 is missing (deleted)"},
		{"two deleted", func(es []Entry) []Entry { return slices.Delete(es, 2, 4) },
			3, "seqs 3 to 4 are missing (deleted)"},
		{"first replaced", func(es []Entry) []Entry { es[0] = es[1]; es[0].Seq = 1; es[0].Hash, _ = hashEntry(es[0]); return es },
			1, "seq 1: prev_hash is not the start of a chain (inserted or reordered)"},
		{"duplicated", func(es []Entry) []Entry { return slices.Insert(es, 3, es[2]) },
			3, "seq 3 comes after seq 3 (duplicated or out of order)"},
		{"moved from another chain", func(es []Entry) []Entry { es[4].Chain = "t2"; return es },
			5, `seq 5: belongs to chain "t2" (moved)`},
		{"edited twice: the first edit is named", func(es []Entry) []Entry {
			es[6].Reason, es[1].Reason = "x", "y"
			return es
		}, 2, "seq 2: hash does not match its contents (edited)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			entries := c.change(testChain(t, 8))
			r, err := Verify(context.Background(), sliceLog{entries: entries}, "t1", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.FirstBroken != c.seq || r.Problem != c.problem {
				t.Errorf("verify = %+v\nwant first broken %d: %q", r, c.seq, c.problem)
			}
			if r.Entries != len(entries) || r.Head != entries[len(entries)-1].Hash {
				t.Errorf("verify counted %d entries up to %s, want %d up to %s",
					r.Entries, r.Head, len(entries), entries[len(entries)-1].Hash)
			}
		})
	}
}

func TestVerify_Intact(t *testing.T) {
	entries := testChain(t, 4)
	r, err := Verify(context.Background(), sliceLog{entries: entries}, "t1", nil, nil)
	if want := (Report{Chain: "t1", Entries: 4, Head: entries[3].Hash}); err != nil || r != want {
		t.Errorf("verify = %+v, %v; want %+v", r, err, want)
	}
	r, err = Verify(context.Background(), sliceLog{}, "t1", nil, nil)
	if want := (Report{Chain: "t1"}); err != nil || r != want {
		t.Errorf("verify of an empty chain = %+v, %v; want %+v", r, err, want)
	}
}

func TestVerify_Anchors(t *testing.T) {
	ctx := context.Background()
	pub, priv := newKey(t)
	entries := testChain(t, 8)
	anchor := func(seq int64) Anchor { return SignAnchor(priv, "t1", seq, entries[seq-1].Hash) }

	for _, c := range []struct {
		name    string
		entries []Entry
		anchors []Anchor
		seq     int64
		problem string
	}{
		{"intact", entries, []Anchor{anchor(3), anchor(8)}, 0, ""},
		{"truncated", entries[:5], []Anchor{anchor(3), anchor(8)}, 6,
			"chain ends at seq 5 but is anchored at seq 8 (truncated)"},
		{"emptied", nil, []Anchor{anchor(1)}, 1,
			"chain ends at seq 0 but is anchored at seq 1 (truncated)"},
		{"head differs", entries, []Anchor{SignAnchor(priv, "t1", 4, entries[4].Hash)}, 4,
			"seq 4: hash differs from its anchor (rewritten)"},
		{"signed by another key", entries, []Anchor{SignAnchor(func() []byte { _, k := newKey(t); return k }(), "t1", 8, entries[7].Hash)}, 8,
			"anchor at seq 8: signature does not verify (forged, or signed by another key)"},
		{"seq changed after signing", entries, []Anchor{func() Anchor { a := anchor(8); a.Seq = 7; return a }()}, 7,
			"anchor at seq 7: signature does not verify (forged, or signed by another key)"},
		{"anchored entry deleted", slices.Delete(slices.Clone(entries), 2, 3), []Anchor{anchor(3)}, 3,
			"seq 3 is missing (deleted)"},
		{"an earlier edit comes first", func() []Entry {
			es := slices.Clone(entries[:6])
			es[1].Target = "x"
			return es
		}(), []Anchor{anchor(8)}, 2, "seq 2: hash does not match its contents (edited)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := Verify(ctx, sliceLog{entries: c.entries}, "t1", c.anchors, pub)
			if err != nil {
				t.Fatal(err)
			}
			if r.FirstBroken != c.seq || r.Problem != c.problem {
				t.Errorf("verify = %+v\nwant first broken %d: %q", r, c.seq, c.problem)
			}
		})
	}

	for name, call := range map[string]func() error{
		"anchor of another chain": func() error {
			_, err := Verify(ctx, sliceLog{entries: entries}, "t2", []Anchor{anchor(1)}, pub)
			return err
		},
		"anchors without a key": func() error {
			_, err := Verify(ctx, sliceLog{entries: entries}, "t1", []Anchor{anchor(1)}, nil)
			return err
		},
		"walk fails": func() error {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err := Verify(ctx, sliceLog{entries: entries}, "t1", nil, nil)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("verify = %v, want the walk's error", err)
			}
			return err
		},
	} {
		if err := call(); err == nil {
			t.Errorf("%s: verify succeeded", name)
		}
	}
}
