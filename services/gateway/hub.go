package gateway

import (
	"hash/maphash"
	"sync"
)

// channelKey scopes every channel by its app: there is no way to look up a
// channel without naming the app.
type channelKey struct {
	appID   string
	channel string
}

// hub holds the local subscribers of every channel, sharded by (app,
// channel) so that subscribes on different channels rarely contend and a
// publish holds only its channel's shard.
type hub struct {
	seed   maphash.Seed
	shards [hubShards]hubShard
}

const hubShards = 64

type hubShard struct {
	mu       sync.RWMutex
	channels map[channelKey][]*subscription
}

func newHub() *hub {
	h := &hub{seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].channels = map[channelKey][]*subscription{}
	}
	return h
}

func (h *hub) shard(k channelKey) *hubShard {
	var m maphash.Hash
	m.SetSeed(h.seed)
	m.WriteString(k.appID)
	m.WriteByte(0)
	m.WriteString(k.channel)
	return &h.shards[m.Sum64()%hubShards]
}

// add adds s to its channel and reports whether it is the channel's first
// local subscriber.
func (h *hub) add(appID string, s *subscription) (first bool) {
	k := channelKey{appID, s.channel}
	sh := h.shard(k)
	sh.mu.Lock()
	subs := sh.channels[k]
	s.idx = len(subs)
	sh.channels[k] = append(subs, s)
	sh.mu.Unlock()
	return len(subs) == 0
}

// remove removes s from its channel and reports whether the channel has no
// local subscribers left.
func (h *hub) remove(appID string, s *subscription) (last bool) {
	k := channelKey{appID, s.channel}
	sh := h.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	subs := sh.channels[k]
	if s.idx >= len(subs) || subs[s.idx] != s {
		return false
	}
	end := len(subs) - 1
	subs[s.idx] = subs[end]
	subs[s.idx].idx = s.idx
	subs[end] = nil
	subs = subs[:end]
	if len(subs) == 0 {
		delete(sh.channels, k)
		return true
	}
	sh.channels[k] = subs
	return false
}

// broadcast enqueues frame to every subscriber of the channel except the
// connection excludeSocketID and returns how many got it. The same frame
// bytes go to everyone; nothing is allocated per recipient.
func (h *hub) broadcast(appID, channel string, frame []byte, excludeSocketID string) int {
	k := channelKey{appID, channel}
	sh := h.shard(k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	n := 0
	for _, s := range sh.channels[k] {
		if s.client.socketID == excludeSocketID {
			continue
		}
		if s.client.Enqueue(frame) {
			n++
		}
	}
	return n
}

// broadcastSeq hands the frame of event seq of a durable channel to every
// subscriber whose cursor it continues (see Client.enqueueSeq) and returns
// how many got it. The excluded connection's cursor moves past it too.
func (h *hub) broadcastSeq(appID, channel string, frame []byte, seq uint64, excludeSocketID string) int {
	k := channelKey{appID, channel}
	sh := h.shard(k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	n := 0
	for _, s := range sh.channels[k] {
		if s.client.enqueueSeq(s, seq, frame, s.client.socketID == excludeSocketID) {
			n++
		}
	}
	return n
}

// broadcastGap tells every live subscriber of a durable channel that
// events are missing (frame is a herald:resume_failed) and moves its cursor
// to next.
func (h *hub) broadcastGap(appID, channel string, frame []byte, next uint64) {
	k := channelKey{appID, channel}
	sh := h.shard(k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	for _, s := range sh.channels[k] {
		s.client.enqueueGap(s, frame, next)
	}
}
