package presence

import (
	"context"
	"encoding/json"
	"errors"
)

// ErrFull is returned by Join when a new user would exceed the channel's
// member limit.
var ErrFull = errors.New("presence channel is full")

// Member is one user of a presence channel.
type Member struct {
	UserID string
	// UserInfo is the raw JSON user_info from the signed channel data, or
	// nil.
	UserInfo json.RawMessage
}

// Store holds presence members. All methods are safe for concurrent use.
type Store interface {
	// Join records connection connID of member m in (appID, channel). It
	// reports whether this is the user's first connection there (so
	// member_added is due). If the user is new and the channel already has
	// maxMembers users it returns ErrFull and records nothing. A connection
	// joining twice is recorded once.
	Join(ctx context.Context, appID, channel, connID string, m Member, maxMembers int) (first bool, err error)
	// Leave removes connection connID of userID. It reports whether that
	// was the user's last connection there (so member_removed is due).
	// Leaving a channel one never joined is not an error.
	Leave(ctx context.Context, appID, channel, connID, userID string) (last bool, err error)
	// Members returns the distinct users of (appID, channel), ordered by
	// user id, each with the user_info of its earliest connection.
	Members(ctx context.Context, appID, channel string) ([]Member, error)
	// Count returns the number of distinct users of (appID, channel).
	Count(ctx context.Context, appID, channel string) (int, error)
	// Heartbeat renews the entries of connections conns (connection id →
	// member), all owned by the calling node, in (appID, channel). The
	// owning node calls it well within the store's TTL for as long as the
	// connections are there. An entry the store no longer has (Redis
	// restarted, or the node was cut off past the TTL and its members were
	// expired) is recorded again; the users that thereby became members
	// again are returned so the caller can announce member_added.
	Heartbeat(ctx context.Context, appID, channel string, conns map[string]Member) ([]Member, error)
	// Expire removes the entries whose heartbeat lapsed (their node died)
	// and returns the users that left the channel with them, so the caller
	// can announce member_removed. Each lapsed user is returned to exactly
	// one caller, however many nodes call Expire at once. Members and Count
	// never include lapsed entries.
	Expire(ctx context.Context, appID, channel string) ([]string, error)
}

// Occupancy counts each channel's subscriptions across the cluster, so
// channel queries answer for the whole cluster from any node. Counting
// other names, such as an app's connections, it enforces cluster-wide
// concurrent quotas with Acquire.
type Occupancy interface {
	// Add changes this node's subscription count of (appID, channel) by
	// delta (+1 on subscribe, -1 on unsubscribe).
	Add(ctx context.Context, appID, channel string, delta int) error
	// Counts returns the cluster-wide subscription count of each occupied
	// channel of appID whose name starts with prefix. Counts of a node that
	// stopped heartbeating are left out.
	Counts(ctx context.Context, appID, prefix string) (map[string]int, error)
	// Count returns the cluster-wide subscription count of (appID,
	// channel).
	Count(ctx context.Context, appID, channel string) (int, error)
	// Acquire adds one to this node's count of name in appID if the
	// cluster-wide count of name stays within limit, and reports whether it
	// did. The check and the add are one atomic step across the cluster, so
	// concurrent Acquires on any nodes never overshoot limit. Release with
	// Add(ctx, appID, name, -1). A limit <= 0 means unlimited.
	Acquire(ctx context.Context, appID, name string, limit int) (bool, error)
	// ByNode returns the count of name in appID on each live node that
	// has one, by node id (the console's per-node view). The memory
	// occupancy is one node, named "local".
	ByNode(ctx context.Context, appID, name string) (map[string]int, error)
}
