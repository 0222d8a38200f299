package gateway

import (
	"sync"
	"sync/atomic"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/services/history"
	"github.com/heraldrt/herald/services/presence"
	"github.com/heraldrt/herald/tenants"
)

// Client is one connection. Its fields are guarded as noted.
type Client struct {
	node      *Node
	app       *tenants.App // the app as of connect time
	key       string       // the app key the client connected with
	socketID  string
	transport Transport

	// lastSeen is the unix-nanosecond time of the last inbound frame, read
	// by the liveness sweeper; pinged is set when the sweeper has sent a
	// pusher:ping that is still unanswered.
	lastSeen atomic.Int64
	pinged   atomic.Bool

	mu          sync.Mutex // guards the fields below
	queue       [][]byte   // frames waiting for the writer
	spare       [][]byte   // the writer's previous batch, reused
	queuedBytes int
	writing     bool     // a writer goroutine is running, or a flusher is writing
	scheduled   bool     // on a flusher's dirty list
	flusher     *flusher // set when the transport is a NonBlockingWriter
	closing     bool     // a close is pending after the queue drains
	closed      bool     // the transport is closed or broken
	closeCode   int
	closeReason string
	userID      string // signed-in user, also read by the node's user index
	writer      sync.WaitGroup
	writeFn     func() // c.write, bound once so starting a writer allocates nothing

	// limits are the app's limits under its plan, as of connect time.
	limits tenants.Limits

	// ops is held while a frame is handled and while another goroutine
	// re-checks the connection's subscriptions after a policy change, so
	// the fields below have one user at a time. Lock order: ops, then mu.
	ops      sync.Mutex
	ended    bool // disconnect has run
	channels map[string]*subscription
	userInfo []byte   // the signed-in user's user_info
	roles    []string // the signed-in user's roles, from user_info.roles
	userSlot bool     // the connection holds one of its user's connection slots
	// rejected is the last subscription refusal, for transports that
	// answer one with an HTTP status.
	rejected rejection
	// cursors are herald:resume positions waiting for their channels'
	// subscribes.
	cursors map[string]history.Position
	// The connection's own rates, used until it signs in; a signed-in
	// user's rates are shared by its connections through the limiter.
	subscribes, clientEvents tokenBucket
}

// subscription is one client's membership of one channel. idx is its
// position in the channel's subscriber slice, maintained by the hub under
// the shard lock.
type subscription struct {
	client   *Client
	channel  string
	idx      int
	member   *presence.Member // presence channels only
	accepted bool             // subscription_succeeded was sent
	// subject is who the channel policy judges: the presence member, else
	// the signed-in user, else anonymous.
	subject authz.Subject
	// byPolicy is set when a policy rule, not a channel token, authorised
	// a private channel; a policy change that withdraws the rule ends it.
	byPolicy bool

	// On a durable channel: dc is the node's state of the channel, and
	// start the position announced in subscription_succeeded.
	dc    *durableChannel
	start uint64
	// The subscription's cursor, guarded by client.mu: next is the
	// sequence number it needs next; while replaying, a catch-up from the
	// log is feeding it and live events are skipped (missed records that
	// one was); sentLive is set once a live event has been queued.
	next      uint64
	replaying bool
	missed    bool
	sentLive  bool
}

// rejection is a refused subscription's status and message.
type rejection struct {
	status int
	msg    string
}

// epoch returns the epoch of a durable subscription's channel.
func (s *subscription) epoch() string {
	if s.dc == nil {
		return ""
	}
	s.dc.mu.Lock()
	defer s.dc.mu.Unlock()
	return s.dc.epoch
}

// SocketID returns the connection's socket id.
func (c *Client) SocketID() string { return c.socketID }

// Enqueue queues frame for the client. It never blocks. frame is shared with
// other clients and must not be modified afterwards. If the queue is over its
// bounds the client is a slow consumer and is closed with 4100, so that it
// reconnects rather than holding memory or slowing anyone else.
func (c *Client) Enqueue(frame []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enqueueLocked(frame)
}

func (c *Client) enqueueLocked(frame []byte) bool {
	if c.closed || c.closing {
		return false
	}
	if len(c.queue) >= c.node.cfg.QueueFrames || c.queuedBytes+len(frame) > c.node.cfg.QueueBytes {
		c.node.slowConsumers.Add(1)
		c.startCloseLocked(4100, "slow consumer: too many unsent messages")
		return false
	}
	if c.queue == nil {
		c.queue = make([][]byte, 0, initialQueue)
	}
	c.queue = append(c.queue, frame)
	c.queuedBytes += len(frame)
	c.startWriterLocked()
	return true
}

// enqueueSeq queues the live event seq of a durable channel if it is the
// next one the subscription needs, or a later one (the node's stream jumps
// only past events that retention removed, and says so). An event at or
// below the cursor is a duplicate; during a catch-up from the log the event
// is skipped, and the catch-up reads it from the log. excluded events move
// the cursor without being sent.
func (c *Client) enqueueSeq(s *subscription, seq uint64, frame []byte, excluded bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.dc == nil && !s.replaying {
		// Subscribed while the channel was not durable yet.
		return !excluded && c.enqueueLocked(frame)
	}
	if s.replaying {
		s.missed = true
		return false
	}
	if seq < s.next {
		return false
	}
	s.next = seq + 1
	if excluded {
		return false
	}
	s.sentLive = true
	return c.enqueueLocked(frame)
}

// enqueueGap queues a notice of missing events and moves the cursor of a
// live subscription to next; a catch-up in progress meets the gap itself.
func (c *Client) enqueueGap(s *subscription, frame []byte, next uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.replaying {
		return
	}
	s.next = next
	c.enqueueLocked(frame)
}

// Close asks the writer to send what is queued, then close the connection
// with code. Only the first close takes effect.
func (c *Client) Close(code int, reason string) {
	c.mu.Lock()
	c.startCloseLocked(code, reason)
	c.mu.Unlock()
}

func (c *Client) startCloseLocked(code int, reason string) {
	if c.closing || c.closed {
		return
	}
	c.closing, c.closeCode, c.closeReason = true, code, reason
	c.startWriterLocked()
}

// startWriterLocked makes sure the queue will be written: by the client's
// flusher on its next pass, or, for a transport that can only block (and for
// a pending close), by a writer goroutine of its own.
func (c *Client) startWriterLocked() {
	if c.writing || c.scheduled {
		return
	}
	if c.flusher != nil && !c.closing {
		c.scheduled = true
		c.flusher.schedule(c)
		return
	}
	c.startGoroutineLocked()
}

func (c *Client) startGoroutineLocked() {
	c.writing = true
	c.writer.Add(1)
	go c.writeFn()
}

// flush is a flusher's turn at c: it hands the whole queue to the transport
// in one non-blocking write. If the socket cannot take it all, a writer
// goroutine finishes the job, so a slow client never holds up the flusher.
func (c *Client) flush() {
	c.mu.Lock()
	c.scheduled = false
	if c.closed || c.writing {
		c.mu.Unlock()
		return
	}
	if c.closing || len(c.queue) == 0 {
		if c.closing {
			c.startGoroutineLocked()
		}
		c.mu.Unlock()
		return
	}
	batch := c.queue
	c.queue, c.spare = c.spare[:0], nil
	c.queuedBytes = 0
	c.writing = true
	c.writer.Add(1) // shutdown waits for this write too
	c.mu.Unlock()
	defer c.writer.Done()

	flushed, err := c.transport.(NonBlockingWriter).TryWriteMany(batch)
	clear(batch)

	c.mu.Lock()
	if cap(batch) <= maxIdleQueue {
		c.spare = batch[:0]
	}
	c.writing = false
	switch {
	case err != nil:
		c.closed = true
		c.queue = nil
	case !flushed || c.closing:
		c.startGoroutineLocked()
	case len(c.queue) > 0:
		c.scheduled = true
		c.flusher.schedule(c)
	}
	c.mu.Unlock()
	if err != nil {
		_ = c.transport.Close(CloseAbort, "")
	}
}

// write drains the queue, one transport write per batch, until it is empty;
// then it performs a pending close and exits.
func (c *Client) write() {
	defer c.writer.Done()
	// The first pass writes even with an empty queue: the transport may
	// hold bytes that a non-blocking attempt could not send.
	for first := true; ; first = false {
		c.mu.Lock()
		if c.closed {
			c.writing = false
			c.mu.Unlock()
			return
		}
		if len(c.queue) == 0 && !first {
			c.writing = false
			if !c.closing {
				c.mu.Unlock()
				return
			}
			c.closed = true
			code, reason := c.closeCode, c.closeReason
			c.mu.Unlock()
			_ = c.transport.Close(code, reason)
			return
		}
		batch := c.queue
		c.queue, c.spare = c.spare[:0], nil
		c.queuedBytes = 0
		c.mu.Unlock()

		err := c.transport.WriteMany(batch)
		clear(batch) // drop references so shared frames can be collected

		c.mu.Lock()
		if cap(batch) <= maxIdleQueue {
			c.spare = batch[:0]
		}
		if err != nil {
			c.closed = true
			c.writing = false
			c.queue = nil
			c.mu.Unlock()
			_ = c.transport.Close(CloseAbort, "")
			return
		}
		c.mu.Unlock()
	}
}

// initialQueue is the capacity a queue starts with: enough that a burst
// rarely grows it, small enough to keep per-connection memory low.
const initialQueue = 8

// maxIdleQueue bounds the queue capacity a connection keeps between bursts,
// so that one burst does not pin memory on an idle connection.
const maxIdleQueue = 64

// shutdown is called by the reader when the connection has ended. A close
// already asked for (a protocol error, a terminate) is still sent; otherwise
// the transport is aborted, which also ends a write in progress. It waits for
// the writer, so nothing touches the transport afterwards.
func (c *Client) shutdown() {
	c.mu.Lock()
	graceful := c.closing && !c.closed
	if !graceful {
		c.closed = true
		c.queue, c.spare = nil, nil
	}
	c.mu.Unlock()
	if !graceful {
		_ = c.transport.Close(CloseAbort, "")
	}
	c.writer.Wait()
}

// CloseAbort asks a Transport to drop the connection at once, without a
// close frame. Unlike other codes it may be used concurrently with
// WriteMany, to end a write in progress.
const CloseAbort = 1006

// signedInUser returns the signed-in user id, or "".
func (c *Client) signedInUser() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userID
}
