package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/services/history"
	"github.com/heraldrt/herald/services/protocol"
)

// SSE: GET /app/:key/sse?channels=a,b streams the channels' events to a
// browser EventSource, one message per Pusher frame (data is the frame's
// JSON; no event field, so onmessage sees them all). Events of durable
// channels carry an id listing the stream's cursors, "<channel>:<seq>"
// separated by spaces, so a reconnecting EventSource sends them back as
// Last-Event-ID and the stream resumes where it stopped.

// SSEHandler returns the handler of GET /app/:key/sse.
func (n *Node) SSEHandler() fiber.Handler {
	return func(c *fiber.Ctx) error {
		setCORS(c)
		q, err := url.ParseQuery(string(c.Request().URI().QueryString()))
		if err != nil {
			return fiber.NewError(fiber.StatusBadRequest, "malformed query")
		}
		channels, err := streamChannels(q)
		if err != nil {
			return toFiber(err)
		}
		for _, ch := range channels {
			if protocol.KindOf(ch) == protocol.Presence {
				return fiber.NewError(fiber.StatusBadRequest, "presence channels need a connection that can announce its member: use the WebSocket or the HTTP fallback")
			}
		}
		if err := n.limitStreamIP(c); err != nil {
			return err
		}
		key := strings.Clone(c.Params("key"))
		g, err := n.authorizeStream(c.UserContext(), key, q, channels)
		if err != nil {
			return toFiber(err)
		}
		lastID := c.Get("Last-Event-ID")
		if lastID == "" {
			lastID = q.Get("last_event_id")
		}
		cursors := parseEventID(lastID)
		for ch := range cursors {
			if !slices.Contains(channels, ch) {
				delete(cursors, ch)
			}
		}

		t := &sseTransport{conn: c.Context().Conn(), done: make(chan struct{}), cursors: cursors}
		cl, err := n.Connect(c.UserContext(), key, "7", t)
		if err != nil {
			var r *Refusal
			if errors.As(err, &r) {
				return fiber.NewError(refusalStatus(r.Code), r.Message)
			}
			return err
		}
		if refusal := n.subscribeStream(cl, g, cursors); refusal != nil {
			_ = t.Close(CloseAbort, "")
			n.Serve(cl, func() ([]byte, error) { return nil, errStreamEnded })
			return c.Status(refusal.status).JSON(fiber.Map{"error": refusal.msg})
		}
		c.Set(fiber.HeaderContentType, "text/event-stream; charset=utf-8")
		c.Set(fiber.HeaderCacheControl, "no-cache, no-transform")
		c.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
		c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
			t.attach(w)
			heartbeat := min(n.cfg.SSEHeartbeat, n.cfg.ActivityTimeout/2)
			n.Serve(cl, func() ([]byte, error) { return nil, t.run(cl, heartbeat) })
		})
		return nil
	}
}

var errStreamEnded = errors.New("stream ended")

// subscribeStream subscribes a stream's client to its channels as the
// grant's user, each with its cursor from Last-Event-ID. It returns the
// first refusal.
func (n *Node) subscribeStream(c *Client, g *streamGrant, cursors map[string]uint64) *rejection {
	c.ops.Lock()
	defer c.ops.Unlock()
	if g.userID != "" {
		c.mu.Lock()
		c.userID = g.userID
		c.mu.Unlock()
		n.mu.Lock()
		k := userKey{c.app.ID, g.userID}
		if n.users[k] == nil {
			n.users[k] = map[*Client]struct{}{}
		}
		n.users[k][c] = struct{}{}
		n.mu.Unlock()
	}
	for _, ch := range g.channels {
		if _, dup := c.channels[ch]; dup {
			continue
		}
		if seq, ok := cursors[ch]; ok {
			if c.cursors == nil {
				c.cursors = map[string]history.Position{}
			}
			c.cursors[ch] = history.Position{Seq: seq}
		}
		n.subscribe(c, &subscription{client: c, channel: ch}, false, nil)
		if _, ok := c.channels[ch]; !ok {
			return &c.rejected
		}
	}
	return nil
}

// parseEventID reads "<channel>:<seq> <channel>:<seq>..."; anything else
// is ignored (a stream without cursors starts live).
func parseEventID(id string) map[string]uint64 {
	out := map[string]uint64{}
	for part := range strings.FieldsSeq(id) {
		i := strings.LastIndexByte(part, ':')
		if i <= 0 {
			continue
		}
		seq, err := strconv.ParseUint(part[i+1:], 10, 64)
		if err == nil && protocol.ValidChannelName(part[:i]) && len(out) < maxStreamChannels {
			out[part[:i]] = seq
		}
	}
	return out
}

// refusalStatus maps a connection refusal's Pusher code to an HTTP status.
func refusalStatus(code int) int {
	switch code {
	case protocol.CodeAppNotFound:
		return fiber.StatusNotFound
	case protocol.CodeAppDisabled:
		return fiber.StatusForbidden
	case protocol.CodeOverQuota, protocol.CodeOverCapacity:
		return fiber.StatusTooManyRequests
	}
	return fiber.StatusServiceUnavailable
}

// sseTransport writes frames as server-sent events. Frames queued before
// the response starts streaming wait in early.
type sseTransport struct {
	conn net.Conn

	mu      sync.Mutex
	w       *bufio.Writer // the response body, once streaming
	early   [][]byte
	cursors map[string]uint64 // the stream's position on each durable channel
	id      []byte
	closed  bool

	done  chan struct{} // closed by the first Close
	ended bool          // a Close came; guarded by mu
}

// attach starts the stream: the reconnection delay, then what was queued.
func (t *sseTransport) attach(w *bufio.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.w = w
	_, _ = w.WriteString("retry: 2000\n\n")
	frames := t.early
	t.early = nil
	_ = t.writeLocked(frames)
}

func (t *sseTransport) WriteMany(frames [][]byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errStreamEnded
	}
	if t.w == nil {
		for _, f := range frames {
			t.early = append(t.early, f)
		}
		return nil
	}
	return t.writeLocked(frames)
}

func (t *sseTransport) writeLocked(frames [][]byte) error {
	for _, f := range frames {
		var fr protocol.Frame
		if protocol.DecodeFrame(f, &fr) == nil {
			if string(fr.Event) == "pusher:ping" {
				continue // nobody can answer it; heartbeats keep the stream alive
			}
			channel := string(fr.Channel)
			_, known := t.cursors[channel]
			switch {
			case string(fr.Event) == "pusher_internal:subscription_succeeded":
				// A durable channel's live start is the stream's first
				// position there, unless a cursor came with the request
				// (its replay follows).
				if !known && bytes.Contains(f, []byte(`,"epoch":`)) {
					t.cursors[channel] = fr.Seq
					t.writeID()
				}
			case fr.Seq > 0:
				t.cursors[channel] = fr.Seq
				t.writeID()
			}
		}
		_, _ = t.w.WriteString("data: ")
		// Frames are single-line JSON: the encoder escapes line breaks.
		_, _ = t.w.Write(bytes.ReplaceAll(f, []byte("\n"), []byte("\ndata: ")))
		_, _ = t.w.WriteString("\n\n")
	}
	return t.flushLocked()
}

// writeID writes the id line listing every cursor of the stream, sorted
// by channel.
func (t *sseTransport) writeID() {
	names := make([]string, 0, len(t.cursors))
	for ch := range t.cursors {
		names = append(names, ch)
	}
	slices.Sort(names)
	t.id = append(t.id[:0], "id: "...)
	for i, ch := range names {
		if i > 0 {
			t.id = append(t.id, ' ')
		}
		t.id = append(t.id, ch...)
		t.id = append(t.id, ':')
		t.id = strconv.AppendUint(t.id, t.cursors[ch], 10)
	}
	t.id = append(t.id, '\n')
	_, _ = t.w.Write(t.id)
}

func (t *sseTransport) flushLocked() error {
	// fasthttp sets one write deadline per response; a stream renews it
	// for every write instead, so only a stuck client times out.
	_ = t.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := t.w.Flush(); err != nil {
		t.closed = true
		return err
	}
	return nil
}

// run sends heartbeats until the stream ends, and returns why it ended.
// A heartbeat that gets through counts as the client's activity.
func (t *sseTransport) run(c *Client, every time.Duration) error {
	tick := time.NewTicker(max(every, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return errStreamEnded
		case <-tick.C:
			t.mu.Lock()
			err := errStreamEnded
			if !t.closed {
				_, _ = t.w.WriteString(": heartbeat\n\n")
				err = t.flushLocked()
			}
			t.mu.Unlock()
			if err != nil {
				return err
			}
			c.lastSeen.Store(time.Now().UnixNano())
		}
	}
}

// Close ends the stream after what was written; the browser reconnects
// with Last-Event-ID, or stops if the next request is refused. An abort
// also drops the socket, ending a write in progress.
func (t *sseTransport) Close(code int, _ string) error {
	t.mu.Lock()
	first := !t.ended
	t.ended = true
	attached := t.w != nil
	t.mu.Unlock()
	if first {
		close(t.done)
		// Only an abort of a live stream drops the socket; after a close
		// the response ends normally.
		if code == CloseAbort && attached {
			_ = t.conn.Close()
		}
	}
	return nil
}
