package gateway

// The HTTP fallback of pusher-js, xhr_streaming and xhr_polling (protocol
// reference §10.5), for clients behind proxies that kill WebSockets.
//
// A session is one Client. Its Transport is the session itself: WriteMany
// appends to the session's outbox and wakes the receive request in flight,
// which writes what it finds; frames sent with xhr_send go to the session's
// inbox, which the session's one Serve goroutine reads, so every frame of a
// connection is handled by one goroutine as with WebSockets.
//
// Lock order: fallback.mu, then xhrSession.mu. Neither is held while
// calling the Node or writing to a connection.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/services/protocol"
)

const (
	// streamCharLimit is pusher-js's MAX_BUFFER_LENGTH (http_request.ts):
	// once a stream has carried more characters than this, the client
	// aborts it and opens another. Characters are UTF-16 code units.
	streamCharLimit = 256 * 1024
	maxSendBody     = 64 << 10 // one xhr_send body
	maxOutboxBytes  = 1 << 20  // frames waiting for a receive request
	maxInboxFrames  = 64       // frames waiting for the session's Serve goroutine
	maxInboxBytes   = 128 << 10
)

// fallbackTimings tune the fallback; a zero field means the default.
type fallbackTimings struct {
	// Heartbeat is how often a stream gets an h line and how long a poll
	// is held. Keep it well below activity_timeout. Default 25 s.
	Heartbeat time.Duration
	// Expiry ends a session that has had no receive request in flight for
	// this long, and forgets an ended one after as long again. Default 60 s.
	Expiry time.Duration
}

// fallback holds the HTTP fallback sessions of one node.
type fallback struct {
	n         *Node
	heartbeat time.Duration
	expiry    time.Duration

	mu       sync.Mutex
	sessions map[xhrID]*xhrSession
}

// xhrID is the session part of the URL: pusher-js's random server number
// and session string. A session also remembers its key and client IP, and
// answers no request that does not match both.
type xhrID struct{ server, session string }

// FallbackRoutes registers pusher-js's HTTP fallback transports under its
// default httpPath, /pusher: receive with xhr_streaming or xhr, send with
// xhr_send, and their CORS preflights. Sessions live until they end or
// expire; the janitor that expires them stops with the node.
func (n *Node) FallbackRoutes(r fiber.Router) {
	newFallback(n, fallbackTimings{}).routes(r)
}

func newFallback(n *Node, t fallbackTimings) *fallback {
	f := &fallback{n: n, heartbeat: t.Heartbeat, expiry: t.Expiry, sessions: map[xhrID]*xhrSession{}}
	if f.heartbeat <= 0 {
		f.heartbeat = 25 * time.Second
	}
	if f.expiry <= 0 {
		f.expiry = 60 * time.Second
	}
	go f.janitor()
	return f
}

func (f *fallback) routes(r fiber.Router) {
	const base = "/pusher/app/:key/:server/:session/"
	r.Post(base+"xhr_streaming", f.receive(true))
	r.Post(base+"xhr", f.receive(false))
	r.Post(base+"xhr_send", f.send)
	for _, p := range []string{"xhr_streaming", "xhr", "xhr_send"} {
		r.Options(base+p, preflight)
	}
}

// Every app currently accepts every origin, and pusher-js sends no
// credentials, so the answer is "*" and never Allow-Credentials.
func preflight(c *fiber.Ctx) error {
	c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
	c.Set(fiber.HeaderAccessControlAllowMethods, "POST, OPTIONS")
	c.Set(fiber.HeaderAccessControlAllowHeaders, "Content-Type")
	c.Set(fiber.HeaderAccessControlMaxAge, "86400")
	return c.SendStatus(fiber.StatusNoContent)
}

// xhrFail answers with a JSON error. The fallback writes its own errors so
// that they carry the CORS header and read the same under any error handler.
func xhrFail(c *fiber.Ctx, status int, msg string) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).JSON(fiber.Map{"error": msg})
}

func (f *fallback) clientIP(c *fiber.Ctx) netip.Addr {
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	return f.n.cfg.TrustedProxies.ClientIP(peer, c.Get(fiber.HeaderXForwardedFor))
}

// lookup returns the session the request names, or nil if there is none
// for this key and client IP: a session is never used from elsewhere.
func (f *fallback) lookup(c *fiber.Ctx, ip netip.Addr) (*xhrSession, bool) {
	f.mu.Lock()
	s, ok := f.sessions[xhrID{c.Params("server"), c.Params("session")}]
	f.mu.Unlock()
	if ok && (s.key != c.Params("key") || s.ip != ip) {
		return nil, true
	}
	return s, ok
}

func (f *fallback) forget(s *xhrSession) {
	f.mu.Lock()
	if f.sessions[s.id] == s {
		delete(f.sessions, s.id)
	}
	f.mu.Unlock()
}

func (f *fallback) receive(streaming bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
		// pusher-js's ids are 1-3 digits and 8 characters; bound what
		// the map keeps.
		if len(c.Params("server")) > 8 || len(c.Params("session")) > 64 {
			return xhrFail(c, fiber.StatusNotFound, "malformed session path: expected /pusher/app/{key}/{server}/{session}/...")
		}
		ip := f.clientIP(c)
		s, found := f.lookup(c, ip)
		switch {
		case !found:
			var err error
			if s, err = f.open(c, ip, streaming); s == nil {
				return err
			}
		case s == nil || s.streaming != streaming:
			return xhrFail(c, fiber.StatusNotFound, "unknown session")
		}
		client := s.connected()
		if client == nil {
			return xhrFail(c, fiber.StatusConflict, "session is still opening")
		}
		touch(client)
		c.Set(fiber.HeaderContentType, "text/plain; charset=UTF-8")
		c.Set(fiber.HeaderCacheControl, "no-cache, no-store")
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		c.Set("X-Accel-Buffering", "no") // nginx must pass each line on at once
		if streaming {
			r := s.attach(false)
			// The stream takes the connection over, releasing fasthttp's
			// buffers and goroutine for as long as it lasts; the head goes
			// out at once, not with the first line, which on a restarted
			// stream may be a heartbeat interval away.
			c.Context().HijackSetNoResponse(true)
			c.Context().Hijack(func(conn net.Conn) {
				defer conn.Close()
				f.stream(s, r, conn)
			})
			return nil
		}
		return c.Send(f.poll(s))
	}
}

// open starts a session: the per-IP rate of new connections, then Connect.
// It returns nil (and the response's error) when it has answered the
// request itself.
func (f *fallback) open(c *fiber.Ctx, ip netip.Addr, streaming bool) (*xhrSession, error) {
	v, err := f.n.AllowHandshake(c.UserContext(), ip.String())
	if err != nil {
		f.n.log.Error("connection rate check failed", "err", err)
		return nil, xhrFail(c, fiber.StatusServiceUnavailable, "temporarily unavailable, retry")
	}
	if !v.Allowed {
		v.WriteHeaders(time.Now(), c.Response().Header.SetBytesV)
		c.Set(fiber.HeaderCacheControl, "no-store")
		return nil, c.Status(fiber.StatusTooManyRequests).JSON(fiber.Map{
			"error": fmt.Sprintf("too many new connections from %s: at most %d per minute", ip, v.Limit),
			"limit": "ip_connections_per_minute"})
	}
	// Params point into the request buffer; the session keeps copies.
	id := xhrID{strings.Clone(c.Params("server")), strings.Clone(c.Params("session"))}
	s := &xhrSession{f: f, id: id, key: strings.Clone(c.Params("key")), ip: ip, streaming: streaming,
		inReady: make(chan struct{}, 1), done: make(chan struct{})}
	f.mu.Lock()
	if _, taken := f.sessions[id]; taken {
		f.mu.Unlock()
		return nil, xhrFail(c, fiber.StatusConflict, "session is still opening")
	}
	f.sessions[id] = s // reserved, so that a concurrent request cannot open it twice
	f.mu.Unlock()

	client, err := f.n.Connect(c.UserContext(), s.key, c.Query("protocol"), s)
	if err != nil {
		f.forget(s)
		var r *Refusal
		if !errors.As(err, &r) {
			r = &Refusal{protocol.CodeOverCapacity, "temporarily unavailable"}
		}
		f.n.log.Debug("connection refused", "code", r.Code, "reason", r.Message, "ip", ip, "transport", "xhr")
		// A whole session in one answer, so that pusher-js applies its
		// rules for the close code as it would on a WebSocket.
		body := append([]byte("o\n"), appendFrames(nil, [][]byte{RefusalFrame(r)})...)
		c.Set(fiber.HeaderContentType, "text/plain; charset=UTF-8")
		c.Set(fiber.HeaderCacheControl, "no-cache, no-store")
		return nil, c.Send(appendCloseLine(body, r.Code, r.Message))
	}
	s.mu.Lock()
	s.client = client
	s.idleSince = time.Now()
	s.mu.Unlock()
	go f.n.Serve(client, s.next)
	return s, nil
}

// stream writes the session to one xhr_streaming response until the
// session ends (after its close line), another receive request replaces
// this one, or the client goes away.
func (f *fallback) stream(s *xhrSession, r *xhrReceiver, conn net.Conn) {
	defer s.detach(r)
	beat := time.NewTicker(f.heartbeat)
	defer beat.Stop()
	write := func(b []byte) bool {
		// Each write gets a deadline of its own: only a stuck client
		// times out.
		if conn.SetWriteDeadline(time.Now().Add(writeTimeout)) != nil {
			return false
		}
		if _, err := conn.Write(b); err != nil {
			return false
		}
		if r.sent += utf16Len(b); r.sent > streamCharLimit {
			s.spend(r) // the client is about to open the next stream
		}
		return true
	}
	if _, err := io.WriteString(conn, streamHead); err != nil {
		return
	}
	var buf []byte
	for {
		out, st := s.take(r, buf[:0])
		if st == xhrGone {
			return
		}
		if len(out) > 0 {
			if !write(out) {
				return
			}
			if st == xhrLast {
				f.forget(s)
				return
			}
			if buf = out; cap(buf) > 64<<10 {
				buf = nil // do not pin a burst's buffer on an idle stream
			}
			continue
		}
		select {
		case <-r.wake:
		case <-beat.C:
			// Never in answer to the client's []: pusher-js answers every
			// h with [], so that would loop forever.
			if r.sent <= streamCharLimit && !write([]byte("h\n")) {
				return
			}
		}
	}
}

// streamHead is the head of an xhr_streaming response, whose body lasts
// until the connection closes.
const streamHead = "HTTP/1.1 200 OK\r\n" +
	"Content-Type: text/plain; charset=UTF-8\r\n" +
	"Cache-Control: no-cache, no-store\r\n" +
	"X-Content-Type-Options: nosniff\r\n" +
	"X-Accel-Buffering: no\r\n" + // nginx must pass each line on at once
	"Access-Control-Allow-Origin: *\r\n" +
	"Connection: close\r\n\r\n"

// poll answers one xhr request: at once if there is something to say,
// else when frames arrive, the client pings, a newer poll replaces this one
// or the heartbeat interval passes (then h).
func (f *fallback) poll(s *xhrSession) []byte {
	r := s.attach(true)
	defer s.detach(r)
	timer := time.NewTimer(f.heartbeat)
	defer timer.Stop()
	for {
		out, st := s.take(r, nil)
		if st == xhrLast {
			f.forget(s)
		}
		if len(out) > 0 {
			return out
		}
		if st == xhrGone {
			return []byte("h\n")
		}
		select {
		case <-r.wake:
		case <-timer.C:
			return []byte("h\n")
		}
	}
}

// send handles xhr_send: a JSON array of strings, each a Pusher frame,
// queued for the session's Serve goroutine. An empty array is pusher-js's
// ping.
func (f *fallback) send(c *fiber.Ctx) error {
	c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
	s, _ := f.lookup(c, f.clientIP(c))
	var client *Client
	if s != nil {
		client = s.connected()
	}
	if client == nil {
		return xhrFail(c, fiber.StatusNotFound, "unknown session")
	}
	body := c.Body()
	if len(body) > maxSendBody {
		return xhrFail(c, fiber.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds %d bytes", maxSendBody))
	}
	var frames []string
	if err := json.Unmarshal(body, &frames); err != nil || frames == nil {
		return xhrFail(c, fiber.StatusBadRequest, "body must be a JSON array of strings, each a Pusher frame")
	}
	for _, fr := range frames {
		if len(fr) > f.n.cfg.MaxFrameBytes {
			// As on a WebSocket, an oversized frame ends the connection.
			client.Close(protocol.CloseMessageTooBig, "message too big")
			return xhrFail(c, fiber.StatusRequestEntityTooLarge, fmt.Sprintf("a frame exceeds %d bytes", f.n.cfg.MaxFrameBytes))
		}
	}
	touch(client)
	if len(frames) == 0 {
		s.release()
		return c.SendStatus(fiber.StatusNoContent)
	}
	switch err := s.push(frames); {
	case errors.Is(err, errSessionEnded):
		return xhrFail(c, fiber.StatusNotFound, "unknown session")
	case err != nil:
		return xhrFail(c, fiber.StatusTooManyRequests, "too many unhandled messages on this session, send more slowly")
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// janitor ends sessions that nobody receives for, and forgets ended ones,
// until the node closes.
func (f *fallback) janitor() {
	t := time.NewTicker(max(f.expiry/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-f.n.stop:
			return
		case now := <-t.C:
			var idle []*xhrSession
			f.mu.Lock()
			for id, s := range f.sessions {
				s.mu.Lock()
				quiet := s.client != nil && (s.recv == nil || s.recv.spent) && now.Sub(s.idleSince) > f.expiry
				switch {
				case quiet && s.ended:
					delete(f.sessions, id)
				case quiet:
					idle = append(idle, s)
				}
				s.mu.Unlock()
			}
			f.mu.Unlock()
			for _, s := range idle {
				s.end(appendCloseLine(nil, CloseAbort, "session expired"), true)
			}
		}
	}
}

// xhrSession is one fallback connection and its Transport.
type xhrSession struct {
	f         *fallback
	id        xhrID
	key       string
	ip        netip.Addr
	streaming bool

	inReady chan struct{} // signalled when the inbox gets frames
	done    chan struct{} // closed when the session ends

	mu        sync.Mutex // guards the fields below
	client    *Client    // nil until Connect returns
	inbox     [][]byte
	inBytes   int
	outbox    [][]byte
	outBytes  int
	opened    bool   // o was sent
	ended     bool   // no more frames in or out; closeLine is the last word
	closeLine []byte // c[code,"reason"]\n
	recv      *xhrReceiver
	idleSince time.Time // since when no receive request has been in flight
}

var _ Transport = (*xhrSession)(nil)

// xhrReceiver is one receive request in flight.
type xhrReceiver struct {
	wake  chan struct{} // signalled when there is something to take
	poll  bool
	sent  int  // characters written to this stream; its writer's alone
	spent bool // over streamCharLimit, written no more; guarded by the session's mu
}

type takeState int

const (
	xhrKeep takeState = iota // still the session's receiver
	xhrLast                  // out ends with the close line
	xhrGone                  // replaced or released: write nothing more
)

var (
	errSessionEnded = errors.New("fallback session ended")
	errInboxFull    = errors.New("fallback session inbox full")
)

func (s *xhrSession) connected() *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
}

// attach makes a new receive request the session's receiver; the one it
// replaces is woken to find itself gone.
func (s *xhrSession) attach(poll bool) *xhrReceiver {
	r := &xhrReceiver{wake: make(chan struct{}, 1), poll: poll}
	s.mu.Lock()
	old := s.recv
	s.recv = r
	s.mu.Unlock()
	if old != nil {
		kick(old.wake)
	}
	return r
}

func (s *xhrSession) detach(r *xhrReceiver) {
	s.mu.Lock()
	if s.recv == r {
		s.recv = nil
		s.idleSince = time.Now()
	}
	s.mu.Unlock()
}

// spend marks a stream as over pusher-js's limit: frames wait for the next
// request, and the expiry clock runs as if the stream had ended.
func (s *xhrSession) spend(r *xhrReceiver) {
	s.mu.Lock()
	if !r.spent {
		r.spent = true
		s.idleSince = time.Now()
	}
	s.mu.Unlock()
}

// release completes a held poll, which answers h: the client's ping must
// meet activity within its pong timeout. A stream is not disturbed.
func (s *xhrSession) release() {
	s.mu.Lock()
	r := s.recv
	if r != nil && r.poll {
		s.recv = nil
		s.idleSince = time.Now()
	}
	s.mu.Unlock()
	if r != nil && r.poll {
		kick(r.wake)
	}
}

// take appends what receiver r should write next: o for a new session
// (alone on a poll), then the outbox as one a line, then, once that is
// empty, the close line. Each comes separately so that pusher-js can act on
// a line before the next arrives.
func (s *xhrSession) take(r *xhrReceiver, dst []byte) ([]byte, takeState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recv != r || r.spent && s.ended {
		return dst, xhrGone
	}
	if r.spent {
		return dst, xhrKeep
	}
	if !s.opened {
		s.opened = true
		if dst = append(dst, "o\n"...); r.poll {
			return dst, xhrKeep
		}
	}
	if len(s.outbox) > 0 {
		dst = appendFrames(dst, s.outbox)
		clear(s.outbox)
		s.outbox, s.outBytes = s.outbox[:0], 0
		if cap(s.outbox) > 64 {
			s.outbox = nil // let a burst's backing array go
		}
		return dst, xhrKeep
	}
	if s.ended && len(dst) == 0 {
		return append(dst, s.closeLine...), xhrLast
	}
	return dst, xhrKeep
}

// push queues frames from one xhr_send, all or none.
func (s *xhrSession) push(frames []string) error {
	size := totalLen(frames)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return errSessionEnded
	}
	if len(s.inbox)+len(frames) > maxInboxFrames || s.inBytes+size > maxInboxBytes {
		return errInboxFull
	}
	for _, fr := range frames {
		s.inbox = append(s.inbox, []byte(fr))
	}
	s.inBytes += size
	kick(s.inReady)
	return nil
}

// next is the session's reader for Node.Serve.
func (s *xhrSession) next() ([]byte, error) {
	for {
		s.mu.Lock()
		if s.ended {
			s.mu.Unlock()
			return nil, errSessionEnded
		}
		if len(s.inbox) > 0 {
			fr := s.inbox[0]
			s.inbox[0] = nil
			s.inbox = s.inbox[1:]
			s.inBytes -= len(fr)
			s.mu.Unlock()
			return fr, nil
		}
		s.mu.Unlock()
		select {
		case <-s.inReady:
		case <-s.done:
		}
	}
}

// WriteMany queues frames for the next receive request; it never waits
// for one. Over maxOutboxBytes the client is a slow consumer.
func (s *xhrSession) WriteMany(frames [][]byte) error {
	size := totalLen(frames)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return errSessionEnded
	}
	if s.outBytes+size > maxOutboxBytes {
		s.f.n.slowConsumers.Add(1)
		s.endLocked(appendCloseLine(nil, protocol.CodeOverCapacity, "slow consumer: too many unsent messages"), true)
		return errSessionEnded
	}
	s.outbox = append(s.outbox, frames...) // the frames are shared and never modified
	s.outBytes += size
	if s.recv != nil {
		kick(s.recv.wake)
	}
	return nil
}

// Close ends the session. The close line follows the queued frames to the
// current or next receive request; CloseAbort drops the queued frames.
// Only the first call counts: Serve's disconnect always aborts after a
// close, which must not take the close line away.
func (s *xhrSession) Close(code int, reason string) error {
	if code == CloseAbort && reason == "" {
		reason = "connection closed"
	}
	s.end(appendCloseLine(nil, code, reason), code == CloseAbort)
	return nil
}

func (s *xhrSession) end(line []byte, drop bool) {
	s.mu.Lock()
	s.endLocked(line, drop)
	s.mu.Unlock()
}

func (s *xhrSession) endLocked(line []byte, drop bool) {
	if s.ended {
		return
	}
	s.ended, s.closeLine, s.idleSince = true, line, time.Now()
	s.inbox, s.inBytes = nil, 0
	if drop {
		clear(s.outbox)
		s.outbox, s.outBytes = nil, 0
	}
	if s.recv != nil {
		kick(s.recv.wake)
	}
	close(s.done)
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// touch counts a request of the session as activity for the node's
// liveness sweeper, as an inbound frame would.
func touch(c *Client) {
	c.lastSeen.Store(time.Now().UnixNano())
	c.pinged.Store(false)
}

// appendFrames appends an a line: a JSON array of the frames, each as a
// JSON string.
func appendFrames(dst []byte, frames [][]byte) []byte {
	dst = append(dst, "a["...)
	for i, fr := range frames {
		if i > 0 {
			dst = append(dst, ',')
		}
		// A string view of the frame, not a copy: AppendString only reads it.
		dst = protocol.AppendString(dst, unsafe.String(unsafe.SliceData(fr), len(fr)))
	}
	return append(dst, "]\n"...)
}

func appendCloseLine(dst []byte, code int, reason string) []byte {
	dst = append(dst, "c["...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ',')
	dst = protocol.AppendString(dst, protocol.Shorten(reason, 120))
	return append(dst, "]\n"...)
}

// totalLen is the bytes of frames.
func totalLen[F string | []byte](frames []F) int {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return n
}

// utf16Len counts the characters of valid UTF-8 text as JavaScript does:
// one per sequence, two for a sequence of four bytes (a surrogate pair).
func utf16Len(b []byte) int {
	n := 0
	for _, c := range b {
		if c&0xC0 != 0x80 {
			n++
		}
		if c >= 0xF0 {
			n++
		}
	}
	return n
}
