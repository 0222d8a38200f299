package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Log is an append-only audit log of independent chains. Every method is
// safe for concurrent use. Entries come back with their Details copied:
// changing them changes nothing stored.
type Log interface {
	// Append assigns the next Seq of e.Chain, sets Time (if zero),
	// PrevHash and Hash, and stores it. Appends to one chain are
	// serialised across processes. An entry without chain, actor or action,
	// or with a string PostgreSQL cannot store as is, returns ErrInvalid.
	Append(ctx context.Context, e Entry) (Entry, error)
	// List returns entries matching f, newest first, for the console.
	List(ctx context.Context, f Filter) ([]Entry, error)
	// Chains lists the chain names, in byte order.
	Chains(ctx context.Context) ([]string, error)
	// Walk calls fn for every entry of chain in seq order (for verify and
	// export), stopping at and returning fn's first error. Entries appended
	// during the walk may or may not be visited.
	Walk(ctx context.Context, chain string, fn func(Entry) error) error
}

// AnchorStore keeps the signed heads of chains next to the log, for Verify
// to detect truncation. Both logs of this package implement it. A copy of
// each anchor should also be kept outside the database: whoever can delete
// the log's rows can delete these too (they cannot forge new ones).
type AnchorStore interface {
	// AppendAnchor stores a, which must be well formed (its signature is
	// not checked here); a second anchor at the same chain and seq returns
	// ErrAnchorExists.
	AppendAnchor(ctx context.Context, a Anchor) error
	// Anchors returns the anchors of chain in seq order.
	Anchors(ctx context.Context, chain string) ([]Anchor, error)
}

// ErrAnchorExists is returned by AppendAnchor for a seq already anchored.
var ErrAnchorExists = errors.New("audit: the chain already has an anchor at this seq")

const (
	// DefaultLimit is the page size of a Filter without Limit.
	DefaultLimit = 100
	// MaxLimit is the largest page a Filter may ask for.
	MaxLimit = 1000
)

// Filter selects the entries of one chain for List. Fields left zero do
// not filter.
type Filter struct {
	// Chain is required.
	Chain string
	// AppID and Actor match exactly.
	AppID string
	Actor string
	// ActionPrefix matches the start of Action, taken literally: "key."
	// matches "key.create" and "key.revoke".
	ActionPrefix string
	// Since (inclusive) and Until (exclusive) bound Time.
	Since, Until time.Time
	// Before is the pagination cursor: only entries with Seq < Before are
	// listed. The next page's Before is the Seq of the last entry of this
	// one.
	Before int64
	// Limit is the page size, at most MaxLimit; 0 means DefaultLimit.
	Limit int
}

// check validates f and returns it ready to apply: Limit set, and Since
// and Until rounded up to the microsecond. Entry times are whole
// microseconds, so rounding selects the same entries, and it keeps
// PostgreSQL, which would truncate them, in agreement with the memory log.
func (f Filter) check() (Filter, error) {
	switch {
	case f.Chain == "":
		return Filter{}, fmt.Errorf("%w: filter: chain is required", ErrInvalid)
	case f.Limit < 0 || f.Limit > MaxLimit:
		return Filter{}, fmt.Errorf("%w: filter: limit %d is outside 0 to %d", ErrInvalid, f.Limit, MaxLimit)
	case f.Before < 0:
		return Filter{}, fmt.Errorf("%w: filter: before %d is negative", ErrInvalid, f.Before)
	case f.Limit == 0:
		f.Limit = DefaultLimit
	}
	f.Since, f.Until = ceilMicro(f.Since), ceilMicro(f.Until)
	return f, nil
}

// ceilMicro rounds t up to a whole microsecond.
func ceilMicro(t time.Time) time.Time {
	if c := t.Truncate(time.Microsecond); c.Before(t) {
		return c.Add(time.Microsecond)
	}
	return t
}

// match says whether e passes f's filters other than Chain and Before,
// which the memory log applies by position.
func (f Filter) match(e Entry) bool {
	return (f.AppID == "" || e.AppID == f.AppID) &&
		(f.Actor == "" || e.Actor == f.Actor) &&
		strings.HasPrefix(e.Action, f.ActionPrefix) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since)) &&
		(f.Until.IsZero() || e.Time.Before(f.Until))
}
