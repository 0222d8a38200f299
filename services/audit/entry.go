package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
	"unicode/utf8"
)

// PlatformChain is the chain of platform-wide actions, those of no single
// tenant (creating a tenant, an operator's failed login).
const PlatformChain = "platform"

// GenesisHash is the PrevHash of the first entry of every chain: the hex of
// 32 zero bytes.
var GenesisHash = strings.Repeat("00", sha256.Size)

// ErrInvalid is returned, wrapped, for an entry, filter or anchor that the
// log refuses.
var ErrInvalid = errors.New("audit: invalid")

// Entry is one record of the audit log. Callers fill Chain, Actor, Action
// and whatever else applies; Append sets Seq, PrevHash and Hash, and Time
// when it is zero.
//
// An entry never holds a secret or a payload: callers record a hash instead
// (for a broadcast, Details["payload_sha256"] is the hex SHA-256 of the
// payload). The log is kept forever and nothing recorded by mistake can be
// removed from it without breaking the chain.
type Entry struct {
	// Seq numbers the entries of a chain from 1, without gaps.
	Seq int64 `json:"seq"`
	// Chain is the id of the tenant the entry belongs to, or PlatformChain.
	Chain string `json:"chain"`
	// Time is when the action happened, in UTC to the microsecond: the
	// precision of PostgreSQL's timestamptz, so that a stored entry hashes
	// as it did when it was appended.
	Time time.Time `json:"time"`
	// Actor is who acted: "operator", "user:alice@example.com", …
	Actor string `json:"actor"`
	// ActorIP is the address the actor came from, when known.
	ActorIP  string `json:"actor_ip,omitempty"`
	TenantID string `json:"tenant_id,omitempty"`
	AppID    string `json:"app_id,omitempty"`
	// Action says what was done, as noun.verb: "policy.replace",
	// "key.create", "broadcast.send", "login.failed".
	Action string `json:"action"`
	// Target names what the action was done to (a key, a channel, a user).
	Target string `json:"target,omitempty"`
	// Reason is the actor's stated reason, when the console asks for one.
	Reason string `json:"reason,omitempty"`
	// Details are the action's particulars; for a broadcast: event,
	// channels, payload_sha256 and reached. An empty map is returned as nil.
	Details map[string]string `json:"details,omitempty"`
	// PrevHash is the Hash of the previous entry of the chain (GenesisHash
	// for seq 1) and Hash the hex SHA-256 of PrevHash's bytes, Seq as a
	// big-endian uint64 and the entry's canonical JSON.
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// canonicalEntry is what the chain hashes of an entry: every field but
// PrevHash and Hash, under keys in sorted order. encoding/json writes
// struct fields in declaration order and map keys sorted, so keep the
// fields sorted by key; a field added later must be omitempty, so that the
// entries written before it keep their hashes.
type canonicalEntry struct {
	Action   string            `json:"action"`
	Actor    string            `json:"actor"`
	ActorIP  string            `json:"actor_ip"`
	AppID    string            `json:"app_id"`
	Chain    string            `json:"chain"`
	Details  map[string]string `json:"details"`
	Reason   string            `json:"reason"`
	Seq      int64             `json:"seq"`
	Target   string            `json:"target"`
	TenantID string            `json:"tenant_id"`
	Time     string            `json:"time"`
}

// canonicalJSON returns the bytes of e that its hash covers: compact JSON
// with sorted keys, strings escaped as encoding/json does with HTML escaping
// off, and the time as RFC 3339 in UTC with as many fractional digits as it
// needs. The golden vectors in testdata catch any change to these bytes,
// including one in the standard library's escaping.
func canonicalJSON(e Entry) []byte {
	details := e.Details
	if details == nil {
		details = map[string]string{} // nil and empty hash alike: both are stored as {}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(canonicalEntry{
		Action:   e.Action,
		Actor:    e.Actor,
		ActorIP:  e.ActorIP,
		AppID:    e.AppID,
		Chain:    e.Chain,
		Details:  details,
		Reason:   e.Reason,
		Seq:      e.Seq,
		Target:   e.Target,
		TenantID: e.TenantID,
		Time:     e.Time.UTC().Format(time.RFC3339Nano),
	}); err != nil {
		// Strings, an int64 and a map of strings always encode.
		panic(fmt.Sprintf("audit: canonical JSON: %v", err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// hashEntry returns the Hash that e should have given its PrevHash.
func hashEntry(e Entry) (string, error) {
	prev, err := hex.DecodeString(e.PrevHash)
	if err != nil || len(prev) != sha256.Size {
		return "", fmt.Errorf("audit: seq %d: prev_hash %q is not a hex SHA-256", e.Seq, e.PrevHash)
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(e.Seq)))
	h.Write(canonicalJSON(e))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// prepare returns e as Append stores it, before it is linked: Time in UTC
// to the microsecond (now when zero) and Details copied. It refuses an entry
// without chain, actor or action, and strings that PostgreSQL would not
// store unchanged (invalid UTF-8, NUL), so that both logs accept the same
// entries and a stored entry hashes as it did when appended.
func prepare(e Entry, now time.Time) (Entry, error) {
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	if y := e.Time.Year(); y < 1 || y > 9999 {
		return Entry{}, fmt.Errorf("%w: entry: time %s is outside years 1 to 9999", ErrInvalid, e.Time)
	}
	if e.Chain == "" || e.Actor == "" || e.Action == "" {
		return Entry{}, fmt.Errorf("%w: entry: chain, actor and action are required", ErrInvalid)
	}
	for _, s := range []string{e.Chain, e.Actor, e.ActorIP, e.TenantID, e.AppID, e.Action, e.Target, e.Reason} {
		if err := storable(s); err != nil {
			return Entry{}, err
		}
	}
	for k, v := range e.Details {
		if err := storable(k); err != nil {
			return Entry{}, err
		}
		if err := storable(v); err != nil {
			return Entry{}, err
		}
	}
	e.Details = cloneDetails(e.Details)
	e.Seq, e.PrevHash, e.Hash = 0, "", ""
	return e, nil
}

// storable says whether PostgreSQL's text and jsonb keep s byte for byte.
func storable(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: entry: %q is not valid UTF-8", ErrInvalid, s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: entry: %q contains NUL", ErrInvalid, s)
	}
	return nil
}

// link places a prepared e after the head of its chain (seq 0 and any hash
// for an empty chain) and sets its hash.
func link(e *Entry, headSeq int64, headHash string) error {
	e.Seq = headSeq + 1
	e.PrevHash = headHash
	if headSeq == 0 {
		e.PrevHash = GenesisHash
	}
	h, err := hashEntry(*e)
	if err != nil {
		return err
	}
	e.Hash = h
	return nil
}

// cloneDetails copies d so that no caller shares a stored map; an empty map
// becomes nil, as every log returns it.
func cloneDetails(d map[string]string) map[string]string {
	if len(d) == 0 {
		return nil
	}
	return maps.Clone(d)
}
