package gateway

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/heraldrt/herald/services/broker"
	"github.com/heraldrt/herald/services/history"
	"github.com/heraldrt/herald/services/protocol"
)

// A durable channel's events reach a node's subscribers in sequence order,
// each once, whatever the backplane does: the node keeps, per durable
// channel with local subscribers, the next sequence number it will
// broadcast. An event that arrives early (publishers on two API nodes race
// to the backplane) waits a moment for the ones before it; if they do not
// come, or the backplane lost them (Redis restarted), the node reads them
// from the log. Every event is committed to the log before it is
// published, so the log always has what the backplane dropped. A periodic
// check of the log's heads catches a lost last event, which no later event
// would reveal.
//
// Each subscription has its own next sequence number too, so a subscriber
// that resumes from a cursor is replayed from the log first and then goes
// live without a gap or a duplicate.

// durableChannel is a node's delivery state of one durable channel. Lock
// order: durableChannel.mu, then hub shard locks, then Client.mu.
type durableChannel struct {
	key  channelKey
	refs int // local subscriptions; guarded by Node.durMu

	ready   chan struct{} // closed once the head has been read
	initErr error         // set before ready is closed

	mu        sync.Mutex
	closed    bool                  // the last local subscriber left
	epoch     string                // the channel's epoch ("" until its first event)
	next      uint64                // the next sequence number to broadcast
	held      []*broker.Publication // early arrivals, by sequence number
	heldTimer *time.Timer           // fires when early arrivals waited too long
	repairing bool                  // a read of the log is filling a gap
	missed    bool                  // an arrival was skipped during the repair
	lagSeen   uint64                // the head the last check saw ahead of next
	frame     []byte                // reused by catch-up broadcasts
}

// maxHeld bounds the early arrivals a channel keeps; beyond, the node reads
// the log instead.
const maxHeld = 256

// repairPage is how many events one read of the log returns.
const repairPage = 500

// joinDurable returns the node's state of a durable channel, creating it
// and reading the channel's head if it is the first local subscription.
// Each successful call must be paired with leaveDurable.
func (n *Node) joinDurable(ctx context.Context, k channelKey) (*durableChannel, error) {
	n.durMu.Lock()
	dc := n.durables[k]
	creator := dc == nil
	if creator {
		dc = &durableChannel{key: k, ready: make(chan struct{})}
		n.durables[k] = dc
	}
	dc.refs++
	n.durMu.Unlock()
	if creator {
		heads, err := n.history.Heads(ctx, []history.ChannelKey{{AppID: k.appID, Channel: k.channel}})
		if err != nil {
			dc.initErr = err
		} else {
			dc.mu.Lock()
			dc.epoch, dc.next = heads[0].Epoch, heads[0].Seq+1
			n.releaseHeldLocked(dc)
			if len(dc.held) > 0 {
				n.startRepairLocked(dc) // arrivals beyond the head left a gap
			}
			dc.mu.Unlock()
		}
		close(dc.ready)
	}
	select {
	case <-dc.ready:
	case <-ctx.Done():
		n.leaveDurable(dc)
		return nil, ctx.Err()
	}
	if dc.initErr != nil {
		n.leaveDurable(dc)
		return nil, dc.initErr
	}
	return dc, nil
}

// leaveDurable drops a subscription's reference; the last one forgets the
// channel.
func (n *Node) leaveDurable(dc *durableChannel) {
	n.durMu.Lock()
	dc.refs--
	last := dc.refs == 0
	if last && n.durables[dc.key] == dc {
		delete(n.durables, dc.key)
	}
	n.durMu.Unlock()
	if last {
		dc.mu.Lock()
		dc.closed = true
		if dc.heldTimer != nil {
			dc.heldTimer.Stop()
		}
		dc.held = nil
		dc.mu.Unlock()
	}
}

func (n *Node) durableChannel(k channelKey) *durableChannel {
	n.durMu.Lock()
	defer n.durMu.Unlock()
	return n.durables[k]
}

// handleDurable delivers a publication of a durable channel in order.
func (n *Node) handleDurable(appID, channel string, pub *broker.Publication) {
	dc := n.durableChannel(channelKey{appID, channel})
	if dc == nil {
		// No durable subscription here: the channel became durable after
		// its subscribers connected, or it has none, or its first one is
		// still starting (it skips the event, which its start covers).
		frame := protocol.AppendDurableEvent(make([]byte, 0, 80+len(pub.Event)+len(channel)+len(pub.Data)+len(pub.Data)/8),
			pub.Event, channel, pub.Data, pub.UserID, pub.Seq)
		n.meter.Delivered(appID, n.hub.broadcastSeq(appID, channel, frame, pub.Seq, pub.ExcludeSocketID))
		return
	}
	dc.mu.Lock()
	defer dc.mu.Unlock()
	select {
	case <-dc.ready:
	default:
		// The head is being read: keep the arrival, and sort it out
		// against the head once it is known.
		n.holdLocked(dc, pub)
		return
	}
	if dc.closed {
		return
	}
	switch {
	case pub.Epoch != dc.epoch:
		// The log lost the channel (a reset store); numbering restarted.
		// Subscribers' cursors belong to the old epoch: tell them, and
		// start them again at this event.
		n.log.Warn("durable channel changed epoch", "app", appID, "channel_epoch", dc.epoch, "event_epoch", pub.Epoch)
		dc.epoch = pub.Epoch
		n.hub.broadcastGap(appID, channel, resumeFailedFrame(channel, resumeEpochChanged, pub.Epoch, pub.Seq-1), pub.Seq)
		n.broadcastDurableLocked(dc, pub.Seq, pub)
	case pub.Seq < dc.next:
		// Already delivered, by a repair.
	case dc.repairing:
		dc.missed = true
	case pub.Seq > dc.next:
		n.holdLocked(dc, pub)
	default:
		n.broadcastDurableLocked(dc, pub.Seq, pub)
		n.releaseHeldLocked(dc)
	}
}

// holdLocked keeps an early arrival until the events before it come, or
// starts a repair if they take too long or too many wait.
func (n *Node) holdLocked(dc *durableChannel, pub *broker.Publication) {
	i, found := slices.BinarySearchFunc(dc.held, pub.Seq, func(p *broker.Publication, seq uint64) int {
		return cmpUint(p.Seq, seq)
	})
	if !found {
		dc.held = slices.Insert(dc.held, i, pub)
	}
	select {
	case <-dc.ready:
	default:
		if len(dc.held) > maxHeld {
			dc.held = dc.held[:maxHeld] // the newest are in the log
		}
		return
	}
	if len(dc.held) > maxHeld {
		n.startRepairLocked(dc)
		return
	}
	if dc.heldTimer == nil {
		dc.heldTimer = time.AfterFunc(n.cfg.ReorderWait, func() {
			dc.mu.Lock()
			defer dc.mu.Unlock()
			dc.heldTimer = nil
			if len(dc.held) > 0 && !dc.closed {
				n.startRepairLocked(dc)
			}
		})
	}
}

// releaseHeldLocked broadcasts the held arrivals that are next in line and
// drops those already delivered.
func (n *Node) releaseHeldLocked(dc *durableChannel) {
	i := 0
	for ; i < len(dc.held); i++ {
		p := dc.held[i]
		if p.Seq > dc.next {
			break
		}
		if p.Seq == dc.next && p.Epoch == dc.epoch {
			n.broadcastDurableLocked(dc, p.Seq, p)
		}
	}
	dc.held = slices.Delete(dc.held, 0, i)
	if len(dc.held) == 0 && dc.heldTimer != nil {
		dc.heldTimer.Stop()
		dc.heldTimer = nil
	}
}

// broadcastDurableLocked encodes an event once and hands it to every local
// subscriber whose cursor it continues.
func (n *Node) broadcastDurableLocked(dc *durableChannel, seq uint64, pub *broker.Publication) {
	k := dc.key
	frame := protocol.AppendDurableEvent(make([]byte, 0, 80+len(pub.Event)+len(k.channel)+len(pub.Data)+len(pub.Data)/8),
		pub.Event, k.channel, pub.Data, pub.UserID, seq)
	delivered := n.hub.broadcastSeq(k.appID, k.channel, frame, seq, pub.ExcludeSocketID)
	n.meter.Delivered(k.appID, delivered)
	dc.next = seq + 1
}

func (n *Node) startRepairLocked(dc *durableChannel) {
	if dc.repairing || dc.closed {
		return
	}
	dc.repairing, dc.missed = true, false
	n.repairs.Add(1)
	if dc.heldTimer != nil {
		dc.heldTimer.Stop()
		dc.heldTimer = nil
	}
	go n.repair(dc)
}

// repair reads what the node missed from the log and broadcasts it, until
// it has caught up with the log and nothing arrived meanwhile. It keeps
// trying while the channel has subscribers: the events are committed, so
// they must be delivered.
func (n *Node) repair(dc *durableChannel) {
	k := dc.key
	backoff := 100 * time.Millisecond
	for {
		dc.mu.Lock()
		if dc.closed {
			dc.mu.Unlock()
			return
		}
		after := dc.next - 1
		dc.mu.Unlock()
		ctx, cancel := n.bounded(context.Background())
		page, err := n.history.Read(ctx, k.appID, k.channel, after, repairPage)
		cancel()
		if err != nil {
			n.log.Warn("durable channel repair: reading the log failed", "app", k.appID, "err", err)
			select {
			case <-n.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		dc.mu.Lock()
		if dc.closed {
			dc.mu.Unlock()
			return
		}
		if page.Oldest > dc.next {
			// Retention removed events this node never delivered (it was
			// cut off for longer than the channel keeps events). Tell the
			// subscribers rather than leave a silent hole.
			dc.next = page.Oldest
			n.hub.broadcastGap(k.appID, k.channel, resumeFailedFrame(k.channel, resumeExpired, page.Epoch, dc.next-1), dc.next)
		}
		for i := range page.Events {
			ev := &page.Events[i]
			if ev.Seq == dc.next {
				n.broadcastDurableLocked(dc, ev.Seq, &broker.Publication{Event: ev.Event, Data: ev.Data, ExcludeSocketID: ev.SocketID, UserID: ev.UserID})
			}
		}
		caughtUp := len(page.Events) < repairPage
		if caughtUp && !dc.missed {
			dc.repairing = false
			n.releaseHeldLocked(dc)
			if len(dc.held) > 0 {
				n.startRepairLocked(dc)
			}
			dc.mu.Unlock()
			return
		}
		dc.missed = false
		dc.mu.Unlock()
	}
}

// checkHeads compares the log's heads with what the node delivered, and
// repairs a channel that stayed behind for a whole interval: its last
// events were lost on the way (a Redis restart) and no later event came to
// reveal the gap. One read serves every durable channel of the node.
func (n *Node) checkHeads() {
	n.durMu.Lock()
	chans := make([]*durableChannel, 0, len(n.durables))
	keys := make([]history.ChannelKey, 0, len(n.durables))
	for k, dc := range n.durables {
		select {
		case <-dc.ready:
			if dc.initErr == nil {
				chans = append(chans, dc)
				keys = append(keys, history.ChannelKey{AppID: k.appID, Channel: k.channel})
			}
		default:
		}
	}
	n.durMu.Unlock()
	if len(keys) == 0 {
		return
	}
	ctx, cancel := n.bounded(context.Background())
	heads, err := n.history.Heads(ctx, keys)
	cancel()
	if err != nil {
		n.log.Warn("durable channels: reading the log's heads failed", "err", err)
		return
	}
	for i, dc := range chans {
		head := heads[i].Seq
		dc.mu.Lock()
		switch {
		case head < dc.next || dc.repairing:
			dc.lagSeen = 0
		case dc.lagSeen >= dc.next:
			dc.lagSeen = 0
			n.startRepairLocked(dc)
		default:
			dc.lagSeen = head
		}
		dc.mu.Unlock()
	}
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
