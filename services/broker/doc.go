// Package broker carries publications and control messages between gateway
// nodes. A node subscribes only to the (app, channel) pairs that have local
// subscribers; the broker calls the node's Handler for each publication on
// them and for every control message.
//
// The memory broker is the embedded default (one node only); the Redis
// broker, which scales to many nodes, implements the same interface and
// passes the same contract tests.
//
// Concurrency: the memory broker calls the Handler in the publisher's
// goroutine. The Redis broker calls it from one goroutine per broker, which
// reads the node's single subscriber connection in order; go-redis adds a
// reader and a health-check goroutine behind it. Lock order: Redis.cmdMu
// (orders subscription changes with their Redis commands), then Redis.mu
// (the subscription table, never held while calling Redis or the Handler).
//
// Envelopes on Redis are versioned JSON naming their app and channel,
// optionally signed with HMAC-SHA256 under the cluster key; one that does
// not match the Redis channel it arrived on is dropped and counted.
package broker
