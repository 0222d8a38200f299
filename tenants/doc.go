// Package tenants owns tenants' apps: their ids, keys and secrets, and the
// per-app Settings (limits and features), together with the Store that holds
// them.
//
// Three Stores share one contract (store_test.go runs it against each):
// MemoryStore, the embedded default for a single node; PostgresStore, the
// cluster's control plane over the schema of package migrations; and Cache,
// a read-through cache for request paths in front of either. A Keyring of
// master keys encrypts app secrets at rest in PostgreSQL (AES-256-GCM bound
// to the app and key, security.md SEC-1 and SEC-2); plaintext secrets exist
// only in the App values that lookups return.
//
// Apps are values: a Store hands out *App pointers that nobody mutates, and
// a change replaces the whole App, so readers share them without locks.
// Each type guards its own state with one mutex and starts no goroutines.
package tenants
