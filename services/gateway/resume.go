package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/heraldrt/herald/services/history"
	"github.com/heraldrt/herald/services/protocol"
)

// Resuming: a client that knows its cursor (epoch, seq) on a durable channel
// sends herald:resume {"channel", "epoch", "seq"}. Sent before the
// channel's pusher:subscribe (what the Herald JS client does), it is kept
// and applied when the subscription starts: subscription_succeeded, then
// the missed events from the log, then live events, each once and in
// order. Sent after subscription_succeeded (all stock pusher-js can do from
// its handler), it is applied at once: if no live event has been sent on
// the subscription yet the result is the same; otherwise the missed older
// events follow the live ones already sent, still each once.
//
// A cursor the log cannot serve gets herald:resume_failed on the channel,
// with the reason and the position the live stream continues from. A
// replay includes events their publisher excluded by socket_id: the
// exclusion was for the socket that published them, and a client must not
// have to guess which holes in a replay are meant.

// Replay bounds (DOS-7): a resume that needs more gets too_far_behind, and
// the client re-syncs from the app (or pages through the history API).
const (
	maxReplayEvents = 1000
	maxReplayBytes  = 1 << 20
	replayPage      = 100
)

// Reasons of herald:resume_failed.
const (
	resumeExpired      = "expired"        // retention removed events the cursor needs
	resumeEpochChanged = "epoch_changed"  // the cursor is from another epoch
	resumeTooFarBehind = "too_far_behind" // more than a resume may replay
	resumeUnavailable  = "unavailable"    // the log could not be read; retry
	resumeAhead        = "unknown_position"
)

type resumeRequest struct {
	Channel string          `json:"channel"`
	Epoch   string          `json:"epoch"`
	Seq     json.RawMessage `json:"seq"`
}

// handleResume takes a herald:resume frame.
func (n *Node) handleResume(c *Client, data []byte) {
	if str, ok := protocol.StringValue(data); ok {
		data = str
	}
	var r resumeRequest
	seq, err := uint64(0), json.Unmarshal(data, &r)
	if err == nil {
		seq, err = strconv.ParseUint(string(r.Seq), 10, 64)
	}
	if err != nil || !protocol.ValidChannelName(r.Channel) || len(r.Epoch) > 64 {
		c.sendError(0, `herald:resume needs data {"channel": a channel name, "epoch": a string, "seq": a whole number}`)
		return
	}
	from := history.Position{Epoch: r.Epoch, Seq: seq}
	s, ok := c.channels[r.Channel]
	if !ok {
		// Kept for the subscribe that follows.
		if _, known := c.cursors[r.Channel]; !known && len(c.cursors) >= c.limits.MaxChannelsPerConnection {
			c.sendError(0, fmt.Sprintf("herald:resume: at most %d cursors may wait for their subscriptions", c.limits.MaxChannelsPerConnection))
			return
		}
		if c.cursors == nil {
			c.cursors = map[string]history.Position{}
		}
		c.cursors[r.Channel] = from
		return
	}
	if s.dc == nil {
		c.sendError(0, "herald:resume: channel "+protocol.Shorten(r.Channel, 200)+" is not durable")
		return
	}
	n.resume(c, s, from, nil)
}

// resume applies a cursor to a durable subscription. success is set when
// the subscription is starting (it is the data of its
// subscription_succeeded): s is in the hub but skips live events
// (replaying), and subscription_succeeded is sent here, together with the
// cursor, so that no live event slips in between.
func (n *Node) resume(c *Client, s *subscription, from history.Position, success []byte) {
	atSubscribe := success != nil
	n.resumes.Add(1)
	dc := s.dc
	dc.mu.Lock()
	epoch := dc.epoch
	dc.mu.Unlock()
	var page history.Page
	reason := ""
	switch {
	case from.Epoch != "" && from.Epoch != epoch:
		reason = resumeEpochChanged
	default:
		var err error
		page, err = n.readReplay(c, s, from.Seq)
		switch {
		case err != nil:
			reason = resumeUnavailable
		case from.Seq > page.Head:
			reason = resumeAhead
		case page.Oldest > from.Seq+1:
			reason = resumeExpired
		}
	}

	dc.mu.Lock()
	c.mu.Lock()
	if atSubscribe {
		s.start = dc.next - 1
		c.enqueueLocked(protocol.AppendSubscribed(nil, s.channel, success, true, dc.epoch, s.start))
		s.next, s.replaying, s.missed = dc.next, false, false
	}
	mode := "live"
	switch {
	case reason == "" && s.start > from.Seq && s.start-from.Seq > maxReplayEvents:
		reason = resumeTooFarBehind
	case reason != "" || from.Seq >= s.start && !atSubscribe:
	case atSubscribe || !s.sentLive:
		// Nothing live has gone out since the subscription started: the
		// cursor simply moves back, and the log feeds it up to live.
		s.next, s.replaying, s.missed = from.Seq+1, true, false
		mode = "catch-up"
	default:
		mode = "backfill"
	}
	if reason != "" {
		n.resumesFailed.Add(1)
		c.enqueueLocked(resumeFailedFrame(s.channel, reason, dc.epoch, s.start))
	}
	c.mu.Unlock()
	dc.mu.Unlock()
	switch mode {
	case "catch-up":
		n.catchUp(c, s, page)
	case "backfill":
		n.backfill(c, s, page, s.start)
	}
}

// catchUp feeds a replaying subscription from the log, page by page,
// starting with page, until it has what the log has and no live event was
// skipped meanwhile; then the subscription is live. Live events committed
// after a read are skipped while it runs and read by the next pass.
func (n *Node) catchUp(c *Client, s *subscription, page history.Page) {
	sent := 0
	for {
		c.mu.Lock()
		full := false
		for i := range page.Events {
			ev := &page.Events[i]
			if ev.Seq != s.next {
				continue
			}
			if c.queueBusyLocked() {
				full = true
				break
			}
			s.next++
			frame := protocol.AppendDurableEvent(nil, ev.Event, s.channel, ev.Data, ev.UserID, ev.Seq)
			sent += len(frame)
			c.enqueueLocked(frame)
		}
		if full {
			c.mu.Unlock()
			if !c.waitForRoom() {
				return // the client is not reading; it is being closed
			}
			continue // the rest of the page
		}
		if len(page.Events) < replayPage && !s.missed {
			s.replaying = false
			c.mu.Unlock()
			return
		}
		s.missed = false
		after := s.next - 1
		c.mu.Unlock()
		if sent > maxReplayBytes {
			n.goLive(c, s, resumeTooFarBehind)
			return
		}
		var err error
		if page, err = n.readReplay(c, s, after); err != nil {
			n.goLive(c, s, resumeUnavailable)
			return
		}
	}
}

// goLive ends a catch-up that cannot finish: the subscription continues
// with the node's live stream, and the client is told what it lacks.
func (n *Node) goLive(c *Client, s *subscription, reason string) {
	n.resumesFailed.Add(1)
	dc := s.dc
	dc.mu.Lock()
	c.mu.Lock()
	at := s.next - 1
	s.next, s.replaying, s.missed = max(s.next, dc.next), false, false
	c.enqueueLocked(resumeFailedFrame(s.channel, reason, dc.epoch, max(at, s.next-1)))
	c.mu.Unlock()
	dc.mu.Unlock()
}

// backfill sends the events after a cursor up to upto, the position the
// subscription's live stream started from, to a subscription that already
// had live events: they arrive after those, each once.
func (n *Node) backfill(c *Client, s *subscription, page history.Page, upto uint64) {
	sent := 0
	for {
		last := uint64(0)
		for i := range page.Events {
			ev := &page.Events[i]
			if ev.Seq > upto {
				return
			}
			last = ev.Seq
			if sent > maxReplayBytes || !c.waitForRoom() {
				c.Enqueue(resumeFailedFrame(s.channel, resumeTooFarBehind, page.Epoch, upto))
				return
			}
			frame := protocol.AppendDurableEvent(nil, ev.Event, s.channel, ev.Data, ev.UserID, ev.Seq)
			sent += len(frame)
			c.Enqueue(frame)
		}
		if len(page.Events) < replayPage || last >= upto {
			return
		}
		var err error
		if page, err = n.readReplay(c, s, last); err != nil {
			c.Enqueue(resumeFailedFrame(s.channel, resumeUnavailable, page.Epoch, upto))
			return
		}
	}
}

// readReplay reads a page of a subscription's channel for a replay.
func (n *Node) readReplay(c *Client, s *subscription, after uint64) (history.Page, error) {
	ctx, cancel := n.bounded(context.Background())
	defer cancel()
	page, err := n.history.Read(ctx, c.app.ID, s.channel, after, replayPage)
	if err != nil {
		n.log.Warn("resume: reading the log failed", "app", c.app.ID, "err", err)
	}
	return page, err
}

// queueBusyLocked reports whether the queue is over a quarter of its
// bounds: a replay waits then, so that it never makes its own client a
// slow consumer, with room left for live events.
func (c *Client) queueBusyLocked() bool {
	return len(c.queue) > c.node.cfg.QueueFrames/4 || c.queuedBytes > c.node.cfg.QueueBytes/4
}

// waitForRoom waits until the queue is no longer busy. It gives up when
// the client is closing or has not read for a write timeout.
func (c *Client) waitForRoom() bool {
	deadline := time.Now().Add(writeTimeout)
	for {
		c.mu.Lock()
		busy, gone := c.queueBusyLocked(), c.closed || c.closing
		c.mu.Unlock()
		switch {
		case gone:
			return false
		case !busy:
			return true
		case time.Now().After(deadline):
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// resumeFailedFrame is herald:resume_failed on channel: why the cursor could
// not be served, and the position after which events now follow.
func resumeFailedFrame(channel, reason, epoch string, seq uint64) []byte {
	data := fmt.Appendf(nil, `{"reason":%q,"epoch":%s,"seq":%d}`, reason, protocol.AppendString(nil, epoch), seq)
	return protocol.AppendEvent(nil, "herald:resume_failed", channel, data, "")
}
