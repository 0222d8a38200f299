package authz

import (
	"testing"
	"time"
)

// A refusal carries all four headers with whole seconds; an answer that
// fits carries no Retry-After.
func TestVerdictWriteHeaders(t *testing.T) {
	now := time.Unix(1000, 0)
	got := map[string]string{}
	set := func(name string, value []byte) { got[name] = string(value) }
	Verdict{Allowed: false, Limit: 5, Remaining: -2, Reset: now.Add(1500 * time.Millisecond)}.WriteHeaders(now, set)
	want := map[string]string{"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2", "Retry-After": "2"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	clear(got)
	Verdict{Allowed: true, Limit: 5, Remaining: 3, Reset: now.Add(time.Second)}.WriteHeaders(now, set)
	if _, ok := got["Retry-After"]; ok || got["X-RateLimit-Remaining"] != "3" {
		t.Errorf("allowed: %v", got)
	}
}
