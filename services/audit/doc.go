// Package audit owns Herald's audit log: the append-only record of every
// change made through the admin console and the management API, and of the
// events around them (failed logins, broadcasts). It keeps the entries,
// serves them to the console, and proves that nobody changed them
// (security rows AUD-1, AUD-2, AUD-4).
//
// Entries form one hash chain per tenant, plus the "platform" chain for
// platform-wide actions. The Hash of the entry at seq n is
//
//	SHA-256(PrevHash bytes ‖ n as a big-endian uint64 ‖ canonical JSON)
//
// where PrevHash is the Hash of entry n-1 (32 zero bytes for seq 1) and the
// canonical JSON covers every field but PrevHash and Hash, with sorted
// keys, no insignificant whitespace, encoding/json's string escaping
// without HTML escaping, and the time as RFC 3339 in UTC. testdata holds
// golden vectors of the rule, which must never change: every stored hash
// depends on it.
//
// Verify recomputes a chain and names the first entry edited, deleted,
// inserted or reordered. A chain cut back at its end, or rewritten whole
// from some entry on, is still a valid chain; anchors catch those: the
// operator periodically signs a chain's head with an Ed25519 key kept
// away from the servers (SignAnchor), stores the anchor with
// AnchorStore.AppendAnchor and keeps a copy outside the database, and
// Verify checks the chain against them.
//
// MemoryLog serves embedded mode, PostgresLog a cluster. PostgresLog
// serialises the appends of a chain across nodes with a transaction-scoped
// advisory lock, and can append inside the caller's transaction
// (AppendTx) so that a change and its entry commit together. Its tables
// refuse UPDATE, DELETE and TRUNCATE through a trigger, which stops a bug
// or a stray statement of the application role; the owner of the tables
// can drop the trigger, which the chain and the anchors then reveal.
//
// The chain shows that recorded entries were not changed or removed; it
// does not show who wrote them: whoever can insert rows can append
// entries that link. Keep INSERT on the tables to Herald's role.
//
// Entries hold no secrets and no payloads, only their hashes: nothing can
// be removed from the log once recorded.
package audit
