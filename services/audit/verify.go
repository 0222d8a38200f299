package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Anchor is a chain's head signed with the operator's Ed25519 key
// (AUD-2). The chain alone shows that entries were edited, deleted,
// inserted or reordered; an anchor also shows that the chain was cut back
// or rewritten from some entry on, which leaves a valid chain behind.
type Anchor struct {
	Chain string `json:"chain"`
	Seq   int64  `json:"seq"`
	// Head is the Hash of the chain's entry at Seq.
	Head      string `json:"head"`
	Signature []byte `json:"signature"`
}

// anchorDomain separates anchor signatures from anything else the key
// might sign.
const anchorDomain = "herald/audit-anchor/v1\x00"

// anchorMessage is what an anchor's signature covers: the domain, the
// chain's length as a big-endian uint64 and the chain, Seq as a big-endian
// uint64, and Head as its hex text. The length prefix keeps the chain from
// running into the fields after it.
func anchorMessage(chain string, seq int64, head string) []byte {
	msg := []byte(anchorDomain)
	msg = binary.BigEndian.AppendUint64(msg, uint64(len(chain)))
	msg = append(msg, chain...)
	msg = binary.BigEndian.AppendUint64(msg, uint64(seq))
	return append(msg, head...)
}

// SignAnchor signs head as the hash of chain's entry at seq.
func SignAnchor(priv ed25519.PrivateKey, chain string, seq int64, head string) Anchor {
	return Anchor{Chain: chain, Seq: seq, Head: head, Signature: ed25519.Sign(priv, anchorMessage(chain, seq, head))}
}

// check says whether a is well formed, as AnchorStore.AppendAnchor
// requires.
func (a Anchor) check() error {
	if b, err := hex.DecodeString(a.Head); a.Chain == "" || a.Seq < 1 || err != nil || len(b) != sha256.Size ||
		hex.EncodeToString(b) != a.Head || len(a.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("%w: anchor: want a chain, a seq from 1, a lowercase hex SHA-256 head and a %d-byte signature",
			ErrInvalid, ed25519.SignatureSize)
	}
	return storable(a.Chain)
}

// Report is the outcome of Verify.
type Report struct {
	Chain string `json:"chain"`
	// Entries is the number of entries walked and Head the Hash of the
	// last one ("" for an empty chain).
	Entries int    `json:"entries"`
	Head    string `json:"head"`
	// FirstBroken is the earliest seq found broken, 0 when the chain is
	// intact; Problem says how it is broken.
	FirstBroken int64  `json:"first_broken"`
	Problem     string `json:"problem,omitempty"`
}

// Verify walks chain, recomputes every hash and checks that seqs run from
// 1 without gaps, that each PrevHash is the previous entry's Hash and that
// each stored Hash matches its entry. It then checks each anchor: its
// signature under pub, the chain's hash at the anchor's seq, and that the
// chain reaches that seq. With no anchors, a chain cut back at its end or
// rewritten from some entry on cannot be told from an intact one.
//
// A break is reported, not returned as an error: the error is for a walk
// that failed, an anchor of another chain, or anchors without a valid key.
// A stored row that is no entry at all (a column changed to a value no
// entry can hold) fails the walk, so Verify returns an error for it.
// After the first break of the chain itself, later links are not checked
// (one edit breaks every link after it), but the remaining entries are
// still counted and the anchors still checked; the report names the
// earliest break found.
func Verify(ctx context.Context, log Log, chain string, anchors []Anchor, pub ed25519.PublicKey) (Report, error) {
	if len(anchors) > 0 && len(pub) != ed25519.PublicKeySize {
		return Report{}, fmt.Errorf("audit: verify %s: anchors need an Ed25519 public key", chain)
	}
	anchored := map[int64]string{} // anchored seq → the chain's hash there
	for _, a := range anchors {
		if a.Chain != chain || a.Seq < 1 {
			return Report{}, fmt.Errorf("audit: verify %s: anchor of chain %q at seq %d does not apply", chain, a.Chain, a.Seq)
		}
		anchored[a.Seq] = ""
	}

	r := Report{Chain: chain}
	broken := func(seq int64, format string, args ...any) {
		if r.FirstBroken == 0 || seq < r.FirstBroken {
			r.FirstBroken, r.Problem = seq, fmt.Sprintf(format, args...)
		}
	}
	var (
		last int64         // the highest seq walked
		prev = GenesisHash // the hash of the entry walked last
	)
	err := log.Walk(ctx, chain, func(e Entry) error {
		want, wantPrev := last+1, prev
		last, prev = max(last, e.Seq), e.Hash
		r.Entries++
		r.Head = e.Hash
		if _, ok := anchored[e.Seq]; ok {
			anchored[e.Seq] = e.Hash
		}
		if r.FirstBroken != 0 {
			return nil
		}
		switch {
		case e.Seq == want+1:
			broken(want, "seq %d is missing (deleted)", want)
		case e.Seq > want:
			broken(want, "seqs %d to %d are missing (deleted)", want, e.Seq-1)
		case e.Seq < want:
			broken(e.Seq, "seq %d comes after seq %d (duplicated or out of order)", e.Seq, want-1)
		case e.Chain != chain:
			broken(e.Seq, "seq %d: belongs to chain %q (moved)", e.Seq, e.Chain)
		case e.PrevHash != wantPrev && e.Seq == 1:
			broken(e.Seq, "seq 1: prev_hash is not the start of a chain (inserted or reordered)")
		case e.PrevHash != wantPrev:
			broken(e.Seq, "seq %d: prev_hash does not link to seq %d (inserted or reordered)", e.Seq, e.Seq-1)
		default:
			if h, err := hashEntry(e); err != nil || h != e.Hash {
				broken(e.Seq, "seq %d: hash does not match its contents (edited)", e.Seq)
			}
		}
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify %s: %w", chain, err)
	}

	for _, a := range anchors {
		head := anchored[a.Seq]
		switch {
		case !ed25519.Verify(pub, anchorMessage(a.Chain, a.Seq, a.Head), a.Signature):
			broken(a.Seq, "anchor at seq %d: signature does not verify (forged, or signed by another key)", a.Seq)
		case a.Seq > last:
			broken(last+1, "chain ends at seq %d but is anchored at seq %d (truncated)", last, a.Seq)
		case head == "": // a gap, which the walk reported at or before a.Seq
			broken(a.Seq, "seq %d is missing (deleted)", a.Seq)
		case head != a.Head:
			broken(a.Seq, "seq %d: hash differs from its anchor (rewritten)", a.Seq)
		}
	}
	return r, nil
}
