// Package broker carries publications and control messages between gateway
// nodes. A node subscribes only to the (app, channel) pairs that have local
// subscribers; the broker calls the node's Handler for each publication on
// them and for every control message.
//
// The memory broker is the embedded default (one node only); the Redis
// broker, which scales to many nodes, implements the same interface and
// passes the same contract tests.
package broker
