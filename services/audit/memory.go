package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// MemoryLog is the Log of embedded mode: one process, lost on restart like
// the rest of the embedded control plane. It is also an AnchorStore.
type MemoryLog struct {
	mu      sync.Mutex
	chains  map[string][]Entry // chain → entries in seq order; entries[i].Seq == i+1
	anchors map[string][]Anchor
}

var (
	_ Log         = (*MemoryLog)(nil)
	_ AnchorStore = (*MemoryLog)(nil)
)

// NewMemoryLog returns an empty log.
func NewMemoryLog() *MemoryLog {
	return &MemoryLog{chains: map[string][]Entry{}, anchors: map[string][]Anchor{}}
}

func (m *MemoryLog) Append(_ context.Context, e Entry) (Entry, error) {
	e, err := prepare(e, time.Now())
	if err != nil {
		return Entry{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	entries := m.chains[e.Chain]
	var headHash string
	if n := len(entries); n > 0 {
		headHash = entries[n-1].Hash
	}
	if err := link(&e, int64(len(entries)), headHash); err != nil {
		return Entry{}, err
	}
	m.chains[e.Chain] = append(entries, e)
	e.Details = cloneDetails(e.Details)
	return e, nil
}

func (m *MemoryLog) List(_ context.Context, f Filter) ([]Entry, error) {
	f, err := f.check()
	if err != nil {
		return nil, err
	}
	entries := m.snapshot(f.Chain)
	end := len(entries)
	if f.Before > 0 {
		end = min(end, int(f.Before-1))
	}
	out := []Entry{}
	for i := end - 1; i >= 0 && len(out) < f.Limit; i-- {
		if e := entries[i]; f.match(e) {
			e.Details = cloneDetails(e.Details)
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *MemoryLog) Chains(_ context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.chains))
	for name := range m.chains {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

func (m *MemoryLog) Walk(ctx context.Context, chain string, fn func(Entry) error) error {
	for _, e := range m.snapshot(chain) {
		if err := ctx.Err(); err != nil {
			return err
		}
		e.Details = cloneDetails(e.Details)
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// snapshot returns the entries of chain as of now. Appends only write past
// the end of the returned slice and stored entries never change, so it can
// be read without the lock, and fn may append while Walk runs.
func (m *MemoryLog) snapshot(chain string) []Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.chains[chain]
}

func (m *MemoryLog) AppendAnchor(_ context.Context, a Anchor) error {
	if err := a.check(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	as := m.anchors[a.Chain]
	i, found := slices.BinarySearchFunc(as, a.Seq, func(x Anchor, seq int64) int { return cmp.Compare(x.Seq, seq) })
	if found {
		return fmt.Errorf("%w: chain %s, seq %d", ErrAnchorExists, a.Chain, a.Seq)
	}
	a.Signature = slices.Clone(a.Signature)
	m.anchors[a.Chain] = slices.Insert(as, i, a)
	return nil
}

func (m *MemoryLog) Anchors(_ context.Context, chain string) ([]Anchor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Anchor, len(m.anchors[chain]))
	for i, a := range m.anchors[chain] {
		a.Signature = slices.Clone(a.Signature)
		out[i] = a
	}
	return out, nil
}
