// Package tenants owns tenants' apps: their ids, keys and secrets, and the
// per-app Settings (limits and features), together with the Store that holds
// them. The memory store is the embedded default; PostgreSQL comes with the
// production control plane.
//
// Apps are values: a Store hands out *App pointers that nobody mutates, and
// a change replaces the whole App, so readers share them without locks.
package tenants
