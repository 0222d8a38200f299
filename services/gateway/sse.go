package gateway

import (
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
// channels carry an id listing the stream's cursors,
// "<channel>:<seq>:<epoch>" separated by spaces, so a reconnecting
// EventSource sends them back as Last-Event-ID and the stream resumes where
// it stopped, or is told that the channel's history was reset. A cursor
// written by hand may leave the epoch out ("<channel>:<seq>"); it is then
// taken to be the channel's current epoch.

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
		if _, err := n.limitHandshake(c); err != nil {
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

		t := &sseTransport{done: make(chan struct{}), cursors: cursors}
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
		// The stream takes the connection over, so fasthttp's buffers and
		// goroutine are released: an idle stream costs what an idle
		// WebSocket does, not a request in progress.
		c.Context().HijackSetNoResponse(true)
		c.Context().Hijack(func(conn net.Conn) {
			defer conn.Close()
			if err := t.attach(conn); err != nil {
				_ = t.Close(CloseAbort, "")
				n.Serve(cl, func() ([]byte, error) { return nil, err })
				return
			}
			heartbeat := min(n.cfg.SSEHeartbeat, n.cfg.ActivityTimeout/2)
			n.Serve(cl, func() ([]byte, error) { return nil, t.run(cl, heartbeat) })
		})
		return nil
	}
}

// sseHeader starts every stream: the response head (the body lasts until
// the connection closes) and the browser's reconnection delay.
const sseHeader = "HTTP/1.1 200 OK\r\n" +
	"Content-Type: text/event-stream; charset=utf-8\r\n" +
	"Cache-Control: no-cache, no-transform\r\n" +
	"X-Accel-Buffering: no\r\n" + // nginx: do not buffer the stream
	"Access-Control-Allow-Origin: *\r\n" +
	"X-Content-Type-Options: nosniff\r\n" +
	"Connection: close\r\n\r\n" +
	"retry: 2000\n\n"

var errStreamEnded = errors.New("stream ended")

// subscribeStream subscribes a stream's client to its channels as the
// grant's user, each with its cursor from Last-Event-ID. It returns the
// first refusal.
func (n *Node) subscribeStream(c *Client, g *streamGrant, cursors map[string]history.Position) *rejection {
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
		if at, ok := cursors[ch]; ok {
			if c.cursors == nil {
				c.cursors = map[string]history.Position{}
			}
			c.cursors[ch] = at
		}
		n.subscribe(c, &subscription{client: c, channel: ch}, false, nil)
		if _, ok := c.channels[ch]; !ok {
			return &c.rejected
		}
	}
	return nil
}

// parseEventID reads "<channel>:<seq>[:<epoch>] ..."; anything else is
// ignored (a stream without cursors starts live).
func parseEventID(id string) map[string]history.Position {
	out := map[string]history.Position{}
	for part := range strings.FieldsSeq(id) {
		channel, rest, _ := strings.Cut(part, ":")
		seqText, epoch, _ := strings.Cut(rest, ":")
		seq, err := strconv.ParseUint(seqText, 10, 64)
		if err == nil && protocol.ValidChannelName(channel) && len(epoch) <= 64 && len(out) < maxStreamChannels {
			out[channel] = history.Position{Epoch: epoch, Seq: seq}
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

// sseTransport writes frames as server-sent events straight to the
// connection. Frames queued before the stream starts wait in early.
type sseTransport struct {
	mu      sync.Mutex
	conn    net.Conn // set by attach
	early   [][]byte
	cursors map[string]history.Position // the stream's position on each durable channel
	broken  bool                        // a write failed

	done  chan struct{} // closed by the first Close
	ended bool          // a Close came; guarded by mu
}

// attach starts the stream on conn: the head, then what was queued.
func (t *sseTransport) attach(conn net.Conn) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.conn = conn
	buf := getBuffer()
	defer putBuffer(buf)
	*buf = append(*buf, sseHeader...)
	*buf = t.appendEvents(*buf, t.early)
	t.early = nil
	return t.writeLocked(*buf)
}

func (t *sseTransport) WriteMany(frames [][]byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.broken:
		return errStreamEnded
	case t.conn == nil:
		t.early = append(t.early, frames...)
		return nil
	}
	buf := getBuffer()
	defer putBuffer(buf)
	*buf = t.appendEvents(*buf, frames)
	return t.writeLocked(*buf)
}

// appendEvents appends frames as events, each with the id line of the
// stream's cursors when it moves one.
func (t *sseTransport) appendEvents(b []byte, frames [][]byte) []byte {
	for _, f := range frames {
		var fr protocol.Frame
		if protocol.DecodeFrame(f, &fr) == nil {
			if string(fr.Event) == "pusher:ping" {
				continue // nobody can answer it; heartbeats keep the stream alive
			}
			channel := string(fr.Channel)
			at, known := t.cursors[channel]
			switch {
			case fr.Epoch != nil:
				// subscription_succeeded of a durable channel: the live
				// start is the stream's first position there, unless a
				// cursor of this epoch came with the request (its replay
				// follows).
				if !known || at.Epoch != string(fr.Epoch) && at.Epoch != "" {
					t.cursors[channel] = history.Position{Epoch: string(fr.Epoch), Seq: fr.Seq}
					b = t.appendID(b)
				} else if at.Epoch == "" {
					t.cursors[channel] = history.Position{Epoch: string(fr.Epoch), Seq: at.Seq}
				}
			case fr.Seq > 0 && known:
				at.Seq = fr.Seq
				t.cursors[channel] = at
				b = t.appendID(b)
			}
		}
		b = append(b, "data: "...)
		// Frames are single-line JSON: the encoder escapes line breaks.
		b = append(b, f...)
		b = append(b, "\n\n"...)
	}
	return b
}

// appendID appends the id line listing every cursor of the stream, sorted
// by channel.
func (t *sseTransport) appendID(b []byte) []byte {
	names := make([]string, 0, len(t.cursors))
	for ch := range t.cursors {
		names = append(names, ch)
	}
	slices.Sort(names)
	b = append(b, "id: "...)
	for i, ch := range names {
		if i > 0 {
			b = append(b, ' ')
		}
		at := t.cursors[ch]
		b = append(b, ch...)
		b = append(b, ':')
		b = strconv.AppendUint(b, at.Seq, 10)
		if at.Epoch != "" {
			b = append(b, ':')
			b = append(b, at.Epoch...)
		}
	}
	return append(b, '\n')
}

// writeLocked writes b with a deadline of its own, so that only a stuck
// client times out.
func (t *sseTransport) writeLocked(b []byte) error {
	if t.broken {
		return errStreamEnded
	}
	_ = t.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := t.conn.Write(b); err != nil {
		t.broken = true
		return err
	}
	return nil
}

var heartbeatComment = []byte(": heartbeat\n\n")

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
			err := t.writeLocked(heartbeatComment)
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
	attached := t.conn != nil
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
