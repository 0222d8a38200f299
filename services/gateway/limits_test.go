package gateway

import (
	"testing"
	"time"
)

// A bucket starts full, refuses once empty, and refills at its rate up to
// its burst.
func TestTokenBucket(t *testing.T) {
	var b tokenBucket
	now := time.Unix(1000, 0)
	for i := range 5 {
		if !b.take(now, 1, 5) {
			t.Fatalf("take %d of a full bucket of 5 refused", i+1)
		}
	}
	if b.take(now, 1, 5) {
		t.Fatal("an empty bucket gave a token")
	}
	if !b.take(now.Add(1100*time.Millisecond), 1, 5) || b.take(now.Add(1200*time.Millisecond), 1, 5) {
		t.Error("1.1 s at 1/s should refill exactly one token")
	}
	if !b.take(now.Add(time.Hour), 1, 5) || b.tokens != 4 {
		t.Errorf("a long pause refills to the burst only: %v tokens left", b.tokens)
	}
}
