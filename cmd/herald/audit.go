package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"github.com/heraldrt/herald/services/audit"
)

const auditUsage = `Usage: herald audit verify [flags]
       herald audit keygen

keygen prints a new HERALD_AUDIT_KEY (the Ed25519 seed nodes sign the
chains' heads with; keep it outside the database) and its
HERALD_AUDIT_PUBLIC_KEY (what verify checks the anchors with).

verify checks the hash chains of the audit log in PostgreSQL: every entry's hash,
the links between entries and the sequence numbers, and, with
--audit-public-key, the signed anchors (which also catch a cut-off tail).
Prints one line per chain and names the first broken entry; exits non-zero
if any chain is broken.
`

// errChainBroken makes the command exit non-zero after printing the report.
var errChainBroken = errors.New("the audit log has been tampered with")

func auditCommand(ctx context.Context, args []string, out io.Writer) error {
	ef := newEnvFlags("audit", auditUsage)
	var url, chain, pubKey string
	ef.String(&url, "database-url", "HERALD_DATABASE_URL", "", "PostgreSQL URL")
	ef.String(&pubKey, "audit-public-key", "HERALD_AUDIT_PUBLIC_KEY", "", "base64 Ed25519 public key that verifies the anchors (anchors are not checked without it)")
	ef.fs.StringVar(&chain, "chain", "", "verify only this chain (a tenant id, or platform)")
	if len(args) > 0 && args[0] == "keygen" {
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "HERALD_AUDIT_KEY=%s\nHERALD_AUDIT_PUBLIC_KEY=%s\n",
			base64.StdEncoding.EncodeToString(priv.Seed()), base64.StdEncoding.EncodeToString(pub))
		return nil
	}
	if len(args) == 0 || args[0] != "verify" {
		ef.fs.Usage()
		return fmt.Errorf("herald audit needs the subcommand verify or keygen")
	}
	if err := ef.parse(args[1:]); err != nil {
		return err
	}
	if url == "" {
		return fmt.Errorf("--database-url or HERALD_DATABASE_URL is required: the audit log lives in PostgreSQL")
	}
	var pub ed25519.PublicKey
	if pubKey != "" {
		b, err := base64.StdEncoding.DecodeString(pubKey)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return fmt.Errorf("--audit-public-key must be the base64 of a %d-byte Ed25519 public key", ed25519.PublicKeySize)
		}
		pub = b
	}
	pool, err := openPool(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	log := audit.NewPostgresLog(pool)
	chains := []string{chain}
	if chain == "" {
		if chains, err = log.Chains(ctx); err != nil {
			return err
		}
	}
	if len(chains) == 0 {
		fmt.Fprintln(out, "the audit log is empty")
		return nil
	}
	broken := false
	for _, ch := range chains {
		var anchors []audit.Anchor
		if pub != nil {
			if anchors, err = log.Anchors(ctx, ch); err != nil {
				return err
			}
		}
		r, err := audit.Verify(ctx, log, ch, anchors, pub)
		if err != nil {
			return fmt.Errorf("chain %s: %w", ch, err)
		}
		if r.FirstBroken != 0 {
			broken = true
			fmt.Fprintf(out, "chain %s: BROKEN at seq %d: %s (%d entries)\n", ch, r.FirstBroken, r.Problem, r.Entries)
			continue
		}
		fmt.Fprintf(out, "chain %s: intact, %d entries, head %s, %d anchors checked\n", ch, r.Entries, r.Head, len(anchors))
	}
	if broken {
		return errChainBroken
	}
	return nil
}
