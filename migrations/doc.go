// Package migrations owns Herald's PostgreSQL schema: ordered, embedded SQL
// files named NNNN_name.sql, applied by Apply (herald migrate) and checked by
// Pending (herald serve refuses to start on an out-of-date schema).
//
// Each file runs in its own transaction and is recorded in
// schema_migrations in that same transaction, so a failed file leaves
// nothing behind and is retried whole next time. Apply holds a
// database-wide advisory lock for its whole run, so nodes that start at once
// migrate one after the other and each file is applied exactly once.
//
// Files are never edited once released: a change to the schema is a new
// file. Tables are created unqualified, in the first schema of the
// connection's search_path.
package migrations
