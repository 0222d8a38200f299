// Package presence keeps the members of presence channels per (app,
// channel): one entry per connection, grouped by user, so that a user with
// several connections is one member, added with the first and removed with
// the last. The memory store is the embedded default; the Redis store, with
// TTL heartbeats for entries of nodes that die, implements the same
// interface. Occupancy counts subscriptions per channel across nodes, in
// memory or in Redis; counting connections instead, its Acquire enforces
// concurrent quotas exactly across the cluster.
//
// The Redis store changes a channel's keys only in Lua scripts (lua/*.lua),
// each atomic, so concurrent nodes never see or leave half an update.
// RedisOccupancy runs one heartbeat goroutine; its gate (RWMutex) is taken
// before mu, and mu is never held while calling Redis.
package presence
