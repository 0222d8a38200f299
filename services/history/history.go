// Package history is the event log of durable channels: every event
// published to a durable channel gets the next sequence number of its
// channel and is committed before the publisher is answered, so that a
// subscriber that missed events (a dropped connection, a restarted node, a
// restarted Redis) can read them back in order.
//
// Each channel also has an epoch, an opaque string that changes when the
// channel's history is lost or reset; a cursor is a position (epoch, seq)
// and is only meaningful within its epoch.
package history

import (
	"context"
	"errors"
	"time"
)

// ErrClosed is returned by a store that has been closed.
var ErrClosed = errors.New("history: store closed")

// Retention bounds what a channel keeps: at most MaxEvents events, none
// older than MaxAge. The newest retention given for a channel applies.
type Retention struct {
	MaxEvents int
	MaxAge    time.Duration
}

// Append is one event to commit.
type Append struct {
	AppID     string
	Channel   string
	Event     string
	Data      []byte
	SocketID  string // the publisher's socket_id, excluded from live delivery
	UserID    string // stamped on presence client events
	Retention Retention
}

// Event is one committed event.
type Event struct {
	Seq      uint64
	Event    string
	Data     []byte
	SocketID string
	UserID   string
	Time     time.Time // when it was committed
}

// Position is a place in a channel's log: its epoch and a sequence number.
// A channel that has never had an event is at Seq 0 of its epoch: a
// channel's epoch exists from the start, so that subscribers that come
// before its first event learn the epoch its events will have.
type Position struct {
	Epoch string
	Seq   uint64
}

// Page is the answer to a Read.
type Page struct {
	Epoch string
	// Head is the channel's last sequence number (0: no event ever).
	Head uint64
	// Oldest is the first sequence number still held; Head+1 when the
	// channel holds no event. A reader that needs events before Oldest
	// has lost them to retention.
	Oldest uint64
	// Events are the events after the requested sequence number, in
	// order and without holes, at most the requested limit.
	Events []Event
}

// ChannelKey names one channel of one app.
type ChannelKey struct {
	AppID   string
	Channel string
}

// Store is the event log. Every method is safe for concurrent use.
type Store interface {
	// Append commits events and returns the position each got, in the
	// same order. Events of one channel get consecutive sequence numbers
	// in slice order; concurrent calls, from this node or any other, get
	// numbers in the order they commit, so sequence order is commit
	// order. Concurrent calls share commits (group commit). On error
	// nothing of this call was committed. A call whose ctx ends before its
	// events are taken into a commit returns ctx's error; once taken, it
	// returns the commit's outcome. Events without an app id or channel,
	// with text that is not UTF-8 or holds NUL, or with a negative
	// retention are refused.
	Append(ctx context.Context, events []Append) ([]Position, error)
	// Read returns up to limit events of the channel with a sequence
	// number above after, with the channel's epoch, head and oldest held
	// sequence number. limit is clamped to 1..1000; an after at or above
	// the head returns no events.
	Read(ctx context.Context, appID, channel string, after uint64, limit int) (Page, error)
	// Heads returns the current position of each channel, in the same
	// order (Seq 0 and the channel's epoch for a channel without events).
	Heads(ctx context.Context, channels []ChannelKey) ([]Position, error)
	// Trim enforces every channel's retention as of now and returns how
	// many events it removed. It removes the oldest events of a channel
	// first and never leaves a hole. It must not hold up Append for long.
	Trim(ctx context.Context, now time.Time) (int, error)
	// Close stops the store's goroutines; later calls return ErrClosed.
	Close() error
}
