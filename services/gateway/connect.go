package gateway

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/heraldrt/herald/services/protocol"
	"github.com/heraldrt/herald/tenants"
)

// Refusal is why a new connection is refused: a Pusher error code (sent as
// the first frame and as the close code) and a message.
type Refusal struct {
	Code    int
	Message string
}

func (r *Refusal) Error() string { return fmt.Sprintf("%d: %s", r.Code, r.Message) }

// Connect admits a connection for app key asking for protocol version
// version (the raw query value). On success the client has been sent
// pusher:connection_established; the caller must run its reader and call
// Disconnect when it ends. On refusal nothing was written.
func (n *Node) Connect(ctx context.Context, key, version string, t Transport) (*Client, error) {
	if n.closing.Load() {
		return nil, &Refusal{protocol.CodeReconnect, "server shutting down, reconnect to another node"}
	}
	switch version {
	case "5", "6", "7":
	case "":
		return nil, &Refusal{protocol.CodeNoProtocol, "no protocol version supplied"}
	default:
		return nil, &Refusal{protocol.CodeUnsupportedProtocol, "unsupported protocol version " + protocol.Shorten(version, 16) + "; use 7"}
	}
	app, err := n.apps.AppByKey(ctx, key)
	if errors.Is(err, tenants.ErrNotFound) {
		return nil, &Refusal{protocol.CodeAppNotFound, "could not find app by key " + protocol.Shorten(key, 64)}
	}
	if err != nil {
		n.log.Error("app lookup failed", "err", err)
		return nil, &Refusal{protocol.CodeOverCapacity, "temporarily unavailable, retry"}
	}
	if !app.Active() {
		return nil, &Refusal{protocol.CodeAppDisabled, "app is disabled"}
	}
	limits, refusal := n.admit(ctx, app)
	if refusal != nil {
		return nil, refusal
	}
	n.meter.Connected(app.ID)
	c := &Client{node: n, app: app, key: key, limits: limits, socketID: newSocketID(), transport: t, channels: map[string]*subscription{}}
	c.writeFn = c.write
	if _, ok := t.(NonBlockingWriter); ok {
		c.flusher = n.flushers[n.nextFl.Add(1)%uint32(len(n.flushers))]
	}
	c.lastSeen.Store(time.Now().UnixNano())
	n.mu.Lock()
	n.clients[c] = struct{}{}
	n.mu.Unlock()
	established := fmt.Appendf(nil, `{"socket_id":%q,"activity_timeout":%d}`, c.socketID, int(n.cfg.ActivityTimeout.Seconds()))
	c.Enqueue(protocol.AppendEvent(nil, "pusher:connection_established", "", established, ""))
	n.debugEvent(app.ID, debugEntry{Type: "connected", SocketID: c.socketID})
	return c, nil
}

// RefusalFrame encodes the pusher:error frame that announces a refusal.
func RefusalFrame(r *Refusal) []byte { return protocol.AppendError(nil, r.Code, r.Message) }

// Serve runs the protocol for frames read by next until next fails, then
// disconnects c. A panic in a handler is recovered, counted and logged, and
// closes only this connection.
func (n *Node) Serve(c *Client, next func() ([]byte, error)) {
	defer n.disconnect(c)
	defer func() {
		if r := recover(); r != nil {
			n.panics.Add(1)
			n.log.Error("panic in connection handler", "app", c.app.ID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			c.Close(protocol.CloseInternalServer, "internal error")
		}
	}()
	for {
		frame, err := next()
		if err != nil {
			return
		}
		c.lastSeen.Store(time.Now().UnixNano())
		c.pinged.Store(false)
		n.handleOne(c, frame)
	}
}

// handleOne handles a frame under the connection's ops lock, released even
// if the handler panics so that disconnect can still take it.
func (n *Node) handleOne(c *Client, frame []byte) {
	c.ops.Lock()
	defer c.ops.Unlock()
	n.handleFrame(c, frame)
}

// disconnect ends c: the writer is stopped, every subscription is removed
// (with member_removed and channel_vacated where due) and the node forgets
// the client.
func (n *Node) disconnect(c *Client) {
	c.shutdown()
	c.ops.Lock()
	defer c.ops.Unlock()
	c.ended = true
	for _, s := range c.channels {
		n.unsubscribe(c, s)
	}
	n.mu.Lock()
	delete(n.clients, c)
	if c.userID != "" {
		n.removeUserLocked(c)
	}
	n.mu.Unlock()
	n.release(c)
	n.meter.Disconnected(c.app.ID)
	n.debugEvent(c.app.ID, debugEntry{Type: "disconnected", SocketID: c.socketID})
}

func (n *Node) removeUserLocked(c *Client) {
	k := userKey{c.app.ID, c.userID}
	delete(n.users[k], c)
	if len(n.users[k]) == 0 {
		delete(n.users, k)
	}
}
