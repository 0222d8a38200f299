package history

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// maxRead is the most events one Read returns; limits are clamped to
// 1..maxRead.
const maxRead = 1000

// Memory is the Store of embedded mode: one node, one process. Its history
// goes with the process, and every channel gets a new epoch in the next
// one, which tells readers holding old cursors that their events are gone.
type Memory struct {
	mu       sync.Mutex
	channels map[ChannelKey]*memChannel
	salt     []byte // of the epochs, new with every process
	closed   bool
}

var _ Store = (*Memory)(nil)

// memChannel is one channel's log. It outlives its events, as the counter
// row does in PostgreSQL, so that the epoch and head stay.
type memChannel struct {
	epoch  string
	head   uint64
	events []memEvent // held events, oldest first; the last is head
}

type memEvent struct {
	Event
	expires time.Time // zero: no age limit
}

// NewMemory returns an empty store. It copies the data it is given and
// the data it returns, so callers may reuse their buffers.
func NewMemory() *Memory { return &Memory{channels: map[ChannelKey]*memChannel{}, salt: newSalt()} }

// Append enforces MaxEvents at once, so that a channel never holds more
// events than its retention even if Trim never runs.
func (m *Memory) Append(ctx context.Context, events []Append) ([]Position, error) {
	if err := check(events); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	pos := make([]Position, len(events))
	for i, a := range events {
		key := ChannelKey{a.AppID, a.Channel}
		ch := m.channels[key]
		if ch == nil {
			ch = &memChannel{epoch: epochOf(m.salt, key)}
			m.channels[key] = ch
		}
		ch.head++
		e := memEvent{Event: Event{Seq: ch.head, Event: a.Event, Data: slices.Clone(a.Data),
			SocketID: a.SocketID, UserID: a.UserID, Time: now}}
		if a.Retention.MaxAge > 0 {
			e.expires = now.Add(a.Retention.MaxAge)
		}
		ch.events = append(ch.events, e)
		if keep := a.Retention.MaxEvents; keep > 0 && len(ch.events) > keep {
			ch.drop(len(ch.events) - keep)
		}
		pos[i] = Position{Epoch: ch.epoch, Seq: ch.head}
	}
	return pos, nil
}

// drop removes the oldest n events.
func (ch *memChannel) drop(n int) {
	clear(ch.events[:n]) // the data is garbage before append moves the rest
	ch.events = ch.events[n:]
}

func (m *Memory) Read(_ context.Context, appID, channel string, after uint64, limit int) (Page, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Page{}, ErrClosed
	}
	key := ChannelKey{appID, channel}
	ch := m.channels[key]
	if ch == nil {
		return Page{Epoch: epochOf(m.salt, key), Oldest: 1}, nil
	}
	oldest := ch.head + 1 - uint64(len(ch.events))
	page := Page{Epoch: ch.epoch, Head: ch.head, Oldest: oldest}
	if after >= ch.head {
		return page, nil
	}
	held := ch.events[max(after+1, oldest)-oldest:]
	held = held[:min(len(held), clampLimit(limit))]
	page.Events = make([]Event, len(held))
	for i, e := range held {
		page.Events[i] = e.Event
		page.Events[i].Data = slices.Clone(e.Data)
	}
	return page, nil
}

func (m *Memory) Heads(_ context.Context, channels []ChannelKey) ([]Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	pos := make([]Position, len(channels))
	for i, k := range channels {
		pos[i] = Position{Epoch: epochOf(m.salt, k)}
		if ch := m.channels[k]; ch != nil {
			pos[i].Seq = ch.head
		}
	}
	return pos, nil
}

// Trim removes expired events; Append already enforced MaxEvents. It holds
// the store's lock while it walks every held event, which takes
// milliseconds at the sizes embedded mode serves.
func (m *Memory) Trim(_ context.Context, now time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	removed := 0
	for _, ch := range m.channels {
		// Up to the newest expired event, not only the expired ones: a
		// shortened MaxAge expires later events before earlier ones, and
		// removing only those would leave a hole.
		n := 0
		for i, e := range ch.events {
			if !e.expires.IsZero() && !e.expires.After(now) {
				n = i + 1
			}
		}
		ch.drop(n)
		removed += n
	}
	return removed, nil
}

func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// check refuses events that PostgreSQL would refuse, before they join a
// batch, so that one caller's bad text cannot fail the commit of others.
// The memory store checks the same, so that embedded mode refuses what a
// cluster refuses.
func check(events []Append) error {
	for _, a := range events {
		if a.AppID == "" || a.Channel == "" {
			return errors.New("history: an event needs an app id and a channel")
		}
		for _, s := range [...]string{a.AppID, a.Channel, a.Event, a.SocketID, a.UserID} {
			if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
				return fmt.Errorf("history: %q is not UTF-8 text without NUL", s)
			}
		}
		if a.Retention.MaxEvents < 0 || a.Retention.MaxAge < 0 {
			return fmt.Errorf("history: negative retention %+v", a.Retention)
		}
	}
	return nil
}

// epochOf returns the epoch of a channel in a store with salt: 16 hex
// digits of HMAC-SHA256(salt, app id NUL channel). Deriving it lets a
// channel have its epoch before its first event, the same on every node,
// with nothing written; a store whose history is lost has a new salt, so
// every channel gets a new epoch.
func epochOf(salt []byte, k ChannelKey) string {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(k.AppID))
	m.Write([]byte{0})
	m.Write([]byte(k.Channel))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// newSalt returns 16 random bytes.
func newSalt() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails: the runtime crashes first
	return b
}

func clampLimit(limit int) int { return min(max(limit, 1), maxRead) }
