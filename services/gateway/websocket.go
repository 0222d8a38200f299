package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/services/protocol"
)

// writeTimeout bounds one write to a client; a client that cannot take a
// write within it is dropped.
const writeTimeout = 10 * time.Second

// closeGrace is how long the server waits for the client's answer to a close
// frame before dropping the connection.
const closeGrace = 2 * time.Second

// WebSocketHandler returns the handler for GET /app/:key, the Pusher
// WebSocket endpoint.
func (n *Node) WebSocketHandler() fiber.Handler {
	upgrade := websocket.New(n.serveWebSocket, websocket.Config{
		// Frames are small JSON; a small read buffer keeps idle
		// connections cheap. Writes bypass the library's buffer (see
		// wsTransport), and the pool keeps it from being allocated per
		// connection at all.
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
		WriteBufferPool: &sync.Pool{},
		RecoverHandler:  func(*websocket.Conn) {}, // Serve recovers and counts panics
	})
	return func(c *fiber.Ctx) error {
		if !websocket.IsWebSocketUpgrade(c) {
			return fiber.NewError(fiber.StatusUpgradeRequired, "this endpoint speaks the Pusher protocol over WebSocket: connect with ws://host/app/{key}?protocol=7")
		}
		// The upgraded connection is wrapped by fasthttp; keep the socket
		// itself for non-blocking writes.
		c.Locals(localRawConn, c.Context().Conn())
		ip, err := n.limitHandshake(c)
		if err != nil {
			return err
		}
		c.Locals(localClientIP, ip)
		return upgrade(c)
	}
}

const (
	localRawConn  = "herald.rawconn"
	localClientIP = "herald.clientip"
)

func (n *Node) serveWebSocket(conn *websocket.Conn) {
	conn.SetReadLimit(int64(n.cfg.MaxFrameBytes))
	t := newWSTransport(conn.Conn, conn.Locals(localRawConn))
	c, err := n.Connect(context.Background(), conn.Params("key"), conn.Query("protocol"), t)
	if err != nil {
		var r *Refusal
		if !errors.As(err, &r) {
			r = &Refusal{protocol.CodeOverCapacity, "temporarily unavailable"}
		}
		n.log.Debug("connection refused", "code", r.Code, "reason", r.Message, "ip", conn.Locals(localClientIP))
		_ = t.WriteMany([][]byte{RefusalFrame(r)})
		_ = t.Close(r.Code, r.Message)
		drain(conn.Conn)
		return
	}
	var buf *[]byte
	n.Serve(c, func() ([]byte, error) {
		if buf != nil {
			putBuffer(buf)
			buf = nil
		}
		typ, r, err := conn.NextReader()
		if err != nil {
			return nil, err
		}
		if typ != fws.TextMessage {
			c.Close(protocol.CloseUnsupported, "binary frames are not part of the Pusher protocol")
			return nil, errBinary
		}
		buf = getBuffer()
		*buf, err = readAll(r, (*buf)[:0])
		return *buf, err
	})
	if buf != nil {
		putBuffer(buf)
	}
}

var errBinary = errors.New("binary frame")

// drain reads until the client answers the close or the grace period ends.
func drain(conn *fws.Conn) {
	for {
		if _, _, err := conn.NextReader(); err != nil {
			return
		}
	}
}

func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// wsTransport writes WebSocket frames straight to the socket: all queued
// frames are framed into one buffer and written with one system call. The
// library's own writes (pong replies, the close after an oversized frame)
// are single whole-frame writes too, and the socket serialises concurrent
// writes, so frames never interleave.
type wsTransport struct {
	conn *fws.Conn       // for the close handshake only
	nc   net.Conn        // the socket
	rc   syscall.RawConn // the socket's descriptor; nil if not a plain socket

	// pending holds framed bytes that a non-blocking write could not send;
	// only the client's current writer touches it.
	pending *[]byte
}

var _ Transport = (*wsTransport)(nil)
var _ NonBlockingWriter = (*wsTransport)(nil)

func newWSTransport(conn *fws.Conn, raw any) *wsTransport {
	t := &wsTransport{conn: conn, nc: conn.NetConn()}
	if nc, ok := raw.(net.Conn); ok {
		t.nc = nc
		if sc, ok := nc.(syscall.Conn); ok {
			t.rc, _ = sc.SyscallConn()
		}
	}
	return t
}

// frame appends frames, framed, to any pending bytes.
func (t *wsTransport) frame(frames [][]byte) *[]byte {
	buf := t.pending
	t.pending = nil
	if buf == nil {
		buf = getBuffer()
	}
	b := *buf
	for _, f := range frames {
		b = appendTextFrameHeader(b, len(f))
		b = append(b, f...)
	}
	*buf = b
	return buf
}

func (t *wsTransport) WriteMany(frames [][]byte) error {
	buf := t.frame(frames)
	defer putBuffer(buf)
	if len(*buf) == 0 {
		return nil
	}
	if err := t.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	_, err := t.nc.Write(*buf)
	if err == nil && t.rc != nil {
		// Clear the deadline, or a later non-blocking attempt would fail
		// once it passes.
		err = t.nc.SetWriteDeadline(time.Time{})
	}
	return err
}

func (t *wsTransport) TryWriteMany(frames [][]byte) (bool, error) {
	if t.rc == nil {
		return false, nil // the writer goroutine will send everything
	}
	buf := t.frame(frames)
	b := *buf
	written := 0
	var werr error
	err := t.rc.Write(func(fd uintptr) bool {
		for written < len(b) {
			n, err := syscall.Write(int(fd), b[written:])
			if n > 0 {
				written += n
			}
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				if err != syscall.EAGAIN {
					werr = err
				}
				break
			}
		}
		return true // never wait for the socket: a flusher must not block
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		putBuffer(buf)
		return false, err
	}
	if written == len(b) {
		putBuffer(buf)
		return true, nil
	}
	*buf = b[:copy(b, b[written:])]
	t.pending = buf
	return false, nil
}

func (t *wsTransport) Close(code int, reason string) error {
	if code == CloseAbort {
		return t.nc.Close()
	}
	// A close frame's payload is at most 125 bytes, the code included.
	reason = protocol.Shorten(reason, 120)
	err := t.conn.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(code, reason), time.Now().Add(closeGrace))
	_ = t.nc.SetReadDeadline(time.Now().Add(closeGrace))
	return err
}

// appendTextFrameHeader appends the header of an unmasked, final text frame
// carrying n bytes (RFC 6455 §5.2).
func appendTextFrameHeader(b []byte, n int) []byte {
	switch {
	case n < 126:
		return append(b, 0x81, byte(n))
	case n <= 0xFFFF:
		return append(b, 0x81, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x81, 127)
		return binary.BigEndian.AppendUint64(b, uint64(n))
	}
}

// Write and read buffers are pooled, so an idle connection holds none.
var bufferPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuffer() *[]byte { return bufferPool.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if cap(*b) > 256<<10 {
		return // let an outsized buffer go rather than pin it
	}
	*b = (*b)[:0]
	bufferPool.Put(b)
}
