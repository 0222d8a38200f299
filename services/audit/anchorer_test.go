package audit

import (
	"context"
	"crypto/ed25519"
	"testing"
)

// AnchorHeads anchors each chain that grew, once; Verify accepts the
// anchors with the public key and catches a tail cut off behind them.
func TestAnchorHeads(t *testing.T) {
	ctx := context.Background()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	log := NewMemoryLog()
	for _, chain := range []string{"acme", "acme", "globex"} {
		if _, err := log.Append(ctx, Entry{Chain: chain, Actor: "operator", Action: "app.create"}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := AnchorHeads(ctx, log, log, priv); err != nil || n != 2 {
		t.Fatalf("first run: %d anchors, %v", n, err)
	}
	if n, err := AnchorHeads(ctx, log, log, priv); err != nil || n != 0 {
		t.Fatalf("nothing grew: %d anchors, %v", n, err)
	}
	if _, err := log.Append(ctx, Entry{Chain: "acme", Actor: "operator", Action: "key.create"}); err != nil {
		t.Fatal(err)
	}
	if n, err := AnchorHeads(ctx, log, log, priv); err != nil || n != 1 {
		t.Fatalf("acme grew: %d anchors, %v", n, err)
	}
	anchors, _ := log.Anchors(ctx, "acme")
	r, err := Verify(ctx, log, "acme", anchors, pub)
	if err != nil || r.FirstBroken != 0 || r.Entries != 3 {
		t.Fatalf("verify with anchors: %+v, %v", r, err)
	}
	// Cut the last entry off behind the anchor's back.
	log.mu.Lock()
	log.chains["acme"] = log.chains["acme"][:2]
	log.mu.Unlock()
	if r, err := Verify(ctx, log, "acme", anchors, pub); err != nil || r.FirstBroken == 0 {
		t.Errorf("a cut-off tail passed: %+v, %v", r, err)
	}
}
