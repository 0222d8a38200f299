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
// bounded queue: Enqueue never blocks. Exactly one writer at a time drains a
// connection: for a plain socket, one of the node's flushers, which writes
// everything queued in one non-blocking system call per pass; when the
// socket cannot take it all (and for transports that can only block), a
// writer goroutine of the connection's own, which exists only until the
// queue is empty. An idle connection costs its reader and nothing else.
//
// The node's other goroutines: the liveness sweeper (one ticker for every
// connection), the presence keeper (heartbeats and expiry of dead nodes'
// members), the durable channels' head check (durable.go) and, while one
// runs, a repair per durable channel that reads missed events from the log,
// the HTTP fallback's session janitor (xhr.go), and the broker's delivery
// goroutine, which calls HandlePublication and HandleControl. An SSE stream
// and an xhr session each have the reader of a connection: the stream's
// heartbeat loop, the session's inbox of xhr_send frames.
//
// Lock order: durableChannel.mu, then hub shard lock, then Client.mu, then
// flusher.mu; fallback.mu before xhrSession.mu. Node.mu and Node.durMu (the
// connection, user, presence and durable channel indexes) are never held
// with a shard lock or Client.mu, and no lock is held while calling the
// broker, the presence, occupancy or history store, or a transport.
package gateway
