package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/heraldrt/herald/services/broker"
	"github.com/heraldrt/herald/services/protocol"
)

// The debug stream: while a console watches an app (holds a subscription
// to its protocol.DebugChannel anywhere in the cluster), every node
// publishes what happens in the app there, through the same broker as
// any message, like Pusher's debug console.

// debugEventName is the event debug entries are sent as.
const debugEventName = "herald:debug"

// maxDebugData bounds the payload copied into a debug entry.
const maxDebugData = 2048

// debugRecheck is how long a node trusts what it learnt about whether an
// app is watched, so that at most one cluster-wide count per app per
// second is added to the publish path.
const debugRecheck = time.Second

// DebugToken is the token that opens the debug stream of appID for the
// connection socketID: an HMAC under the cluster's debug key, which the
// console holds and clients do not.
func DebugToken(key []byte, appID, socketID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(appID))
	m.Write([]byte{'\n'})
	m.Write([]byte(socketID))
	return hex.EncodeToString(m.Sum(nil))
}

// debugTokenValid checks a debug subscription's token in constant time.
func (n *Node) debugTokenValid(c *Client, auth []byte) bool {
	if len(n.cfg.DebugKey) == 0 {
		return false
	}
	return hmac.Equal(auth, []byte(DebugToken(n.cfg.DebugKey, c.app.ID, c.socketID)))
}

// debugEntry is one line of the debug stream.
type debugEntry struct {
	Type     string `json:"type"`
	Time     string `json:"time"`
	SocketID string `json:"socket_id,omitempty"`
	Channel  string `json:"channel,omitempty"`
	Event    string `json:"event,omitempty"`
	Data     string `json:"data,omitempty"`
	UserID   string `json:"user_id,omitempty"`
	Message  string `json:"message,omitempty"`
}

// debugWatch caches whether an app's debug stream has subscribers.
type debugWatch struct {
	until   int64 // unix ns
	watched bool
}

type debugState struct {
	apps sync.Map // app id → debugWatch
}

// watched reports whether anyone in the cluster watches appID's stream.
func (n *Node) debugWatched(appID string) bool {
	now := time.Now().UnixNano()
	if v, ok := n.debug.apps.Load(appID); ok {
		if w := v.(debugWatch); now < w.until {
			return w.watched
		}
	}
	ctx, cancel := n.bounded(context.Background())
	count, err := n.occupied.Count(ctx, appID, protocol.DebugChannel)
	cancel()
	watched := err == nil && count > 0
	n.debug.apps.Store(appID, debugWatch{until: now + int64(debugRecheck), watched: watched})
	return watched
}

// debugEvent sends e to appID's debug stream if anyone watches it. It
// never reports to the debug channel about itself.
func (n *Node) debugEvent(appID string, e debugEntry) {
	if e.Channel == protocol.DebugChannel || !n.debugWatched(appID) {
		return
	}
	e.Time = time.Now().UTC().Format(time.RFC3339Nano)
	if len(e.Data) > maxDebugData {
		cut := maxDebugData
		for cut > 0 && !utf8.RuneStart(e.Data[cut]) {
			cut--
		}
		e.Data = e.Data[:cut] + "…"
	}
	data, _ := json.Marshal(e)
	ctx, cancel := n.bounded(context.Background())
	defer cancel()
	if err := n.broker.Publish(ctx, appID, protocol.DebugChannel, &broker.Publication{Event: debugEventName, Data: data}); err != nil {
		n.log.Warn("debug stream publish failed", "app", appID, "err", err)
	}
}

// debugSubscribed marks appID as watched on this node at once, so the
// stream starts with the subscription rather than up to debugRecheck later.
func (n *Node) debugSubscribed(appID string) {
	n.debug.apps.Store(appID, debugWatch{until: time.Now().UnixNano() + int64(debugRecheck), watched: true})
}
