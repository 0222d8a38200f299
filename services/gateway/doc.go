// Package gateway holds client connections and runs the Pusher protocol on
// them: the per-app sharded hub of channel subscriptions, the subscribe
// flow, client events, sign-in, liveness, and the publish pipeline that
// encodes each publication once and hands the same bytes to every local
// subscriber.
//
// # Concurrency
//
// Each connection has one reader goroutine (the transport's handler) that
// runs every protocol handler for that connection; a Client's subscription
// map and sign-in state belong to it alone. Writes go through the Client's
// bounded queue: Enqueue never blocks, and a writer goroutine exists only
// while the queue is non-empty, so exactly one goroutine writes to a
// connection at a time and an idle connection costs no goroutine but its
// reader. The writer hands all queued frames to the transport in one call,
// which writes them with one system call.
//
// Lock order: hub shard lock, then Client.mu. Node.mu (the user index) and
// Client.mu are never held together with a shard lock in the other order,
// and no lock is held while calling the broker, the presence store or a
// transport.
package gateway
