package broker

import (
	"context"
	"errors"
)

// ErrClosed is returned by a broker that has been closed.
var ErrClosed = errors.New("broker closed")

// Publication is one event on one channel of one app.
type Publication struct {
	// Event is the event name.
	Event string
	// Data is the event's data, exactly the string relayed to clients.
	Data []byte
	// ExcludeSocketID, when set, names the connection that must not
	// receive the event (the publisher's own socket_id).
	ExcludeSocketID string
	// UserID is stamped on presence client events as "user_id".
	UserID string
	// Seq and Epoch are the event's position in its durable channel's
	// log; Seq is 0 on an ephemeral channel.
	Seq   uint64
	Epoch string
}

// ControlKind says what a control message asks of every node.
type ControlKind uint8

const (
	// TerminateUser closes every connection signed in as UserID in AppID.
	TerminateUser ControlKind = iota + 1
	// InvalidateApp tells every node that AppID's app, keys or settings
	// changed: drop cached copies and re-check open connections.
	InvalidateApp
)

// Control is a message for every node of the cluster.
type Control struct {
	Kind   ControlKind
	AppID  string
	UserID string
}

// Handler receives what the broker delivers. The broker calls it from its
// own goroutines; for one (app, channel) it calls HandlePublication in
// publish order, never concurrently. Handlers must not block.
type Handler interface {
	HandlePublication(appID, channel string, pub *Publication)
	HandleControl(c Control)
}

// Broker delivers publications to the nodes subscribed to their channel.
type Broker interface {
	// Run starts delivering to h. It is called once, before any other
	// method.
	Run(h Handler) error
	// Publish delivers pub to every node subscribed to (appID, channel),
	// this one included. It returns once the broker has accepted the
	// publication, or an error if it cannot (then nothing was delivered),
	// or ctx's error on timeout. Publications on one channel from one
	// caller are delivered in order.
	Publish(ctx context.Context, appID, channel string, pub *Publication) error
	// Subscribe makes this node receive publications on (appID, channel).
	// The gateway calls it when a channel gets its first local subscriber.
	Subscribe(ctx context.Context, appID, channel string) error
	// Unsubscribe stops them; called when the last local subscriber leaves.
	Unsubscribe(ctx context.Context, appID, channel string) error
	// PublishControl delivers c to every node, this one included.
	PublishControl(ctx context.Context, c Control) error
	// Ready returns nil if the broker can deliver now, or an error saying
	// why not (for /readyz). It must answer within ctx.
	Ready(ctx context.Context) error
	// Close stops delivery; later calls return ErrClosed.
	Close() error
}
