// Package presence keeps the members of presence channels per (app,
// channel): one entry per connection, grouped by user, so that a user with
// several connections is one member, added with the first and removed with
// the last. The memory store is the embedded default; the Redis store, with
// TTL heartbeats for entries of nodes that die, implements the same
// interface.
package presence
