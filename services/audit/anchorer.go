package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
)

// AnchorHeads signs the head of every chain that grew since its last
// anchor and stores the anchors, returning how many it wrote. The worker
// runs it on a schedule (hourly by default), so that a tail cut off or a
// chain rewritten after an anchor is caught by Verify. An anchor another
// node wrote first for the same head is not an error.
func AnchorHeads(ctx context.Context, log Log, store AnchorStore, key ed25519.PrivateKey) (int, error) {
	chains, err := log.Chains(ctx)
	if err != nil {
		return 0, err
	}
	written := 0
	for _, chain := range chains {
		head, err := log.List(ctx, Filter{Chain: chain, Limit: 1})
		if err != nil {
			return written, err
		}
		if len(head) == 0 {
			continue
		}
		anchors, err := store.Anchors(ctx, chain)
		if err != nil {
			return written, err
		}
		if n := len(anchors); n > 0 && anchors[n-1].Seq >= head[0].Seq {
			continue
		}
		err = store.AppendAnchor(ctx, SignAnchor(key, chain, head[0].Seq, head[0].Hash))
		switch {
		case errors.Is(err, ErrAnchorExists):
		case err != nil:
			return written, fmt.Errorf("audit: anchor chain %s: %w", chain, err)
		default:
			written++
		}
	}
	return written, nil
}
