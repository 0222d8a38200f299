package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzCanonicalRoundTrip checks that the canonical JSON of any entry the
// log accepts is valid JSON that decodes back to an equal entry and
// re-encodes to the same bytes: the hash covers every field, unambiguously.
func FuzzCanonicalRoundTrip(f *testing.F) {
	f.Add(int64(1), "acme", int64(1768469400000000000), "operator", "", "acme", "app1", "key.create", "key:1", "", true, "kid", "k1", "", "")
	f.Add(int64(7), "platform", int64(-1), "user:a@example.com", "2001:db8::1", "", "", "login.failed", "", "bad <password> & \"so on\"",
		false, "", "", "", "")
	f.Add(int64(1<<62), "t", int64(0), "é", "\u2028", "\t\n\r\b\f\x01\x7f", "😀", "a\\b", "中文", "\u2029", true, "", "empty key", "Zeta", "\x1f")
	f.Add(int64(-5), "t", int64(1<<62), "x", "\xff", "", "", "x", "", "", true, "\xc3", "\x00", "k", "v")
	f.Fuzz(func(t *testing.T, seq int64, chain string, nanos int64, actor, actorIP, tenant, app, action, target, reason string,
		withDetails bool, k1, v1, k2, v2 string) {
		e := Entry{
			Seq: seq, Chain: chain, Time: time.Unix(0, nanos).UTC(), Actor: actor, ActorIP: actorIP, TenantID: tenant,
			AppID: app, Action: action, Target: target, Reason: reason,
		}
		if withDetails {
			e.Details = map[string]string{k1: v1, k2: v2}
		}
		b := canonicalJSON(e) // must not panic, whatever the entry
		if _, err := prepare(e, time.Time{}); err != nil {
			return // the log refuses it, so it is never hashed
		}
		if !json.Valid(b) {
			t.Fatalf("canonical JSON is not valid: %q", b)
		}
		var c canonicalEntry
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("decode %q: %v", b, err)
		}
		at, err := time.Parse(time.RFC3339Nano, c.Time)
		if err != nil {
			t.Fatalf("time %q: %v", c.Time, err)
		}
		back := Entry{
			Seq: c.Seq, Chain: c.Chain, Time: at.UTC(), Actor: c.Actor, ActorIP: c.ActorIP, TenantID: c.TenantID,
			AppID: c.AppID, Action: c.Action, Target: c.Target, Reason: c.Reason, Details: cloneDetails(c.Details),
		}
		e.Details = cloneDetails(e.Details) // nil and empty encode alike
		if !sameEntries([]Entry{back}, []Entry{e}) {
			t.Fatalf("decoded %+v\nfrom %q\nwant %+v", back, b, e)
		}
		if again := canonicalJSON(back); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded\n%q\nwant\n%q", again, b)
		}
	})
}
