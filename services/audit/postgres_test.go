package audit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/heraldrt/herald/internal/dbtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestPostgresLog(t *testing.T) {
	testLog(t, func(t *testing.T) Log { return NewPostgresLog(dbtest.Pool(t, dbtest.URL(t))) })
}

// Two nodes, each with its own pool, append to one chain at once.
func TestPostgresLog_AppendsFromTwoNodes(t *testing.T) {
	url := dbtest.URL(t)
	nodes := []*PostgresLog{NewPostgresLog(dbtest.Pool(t, url)), NewPostgresLog(dbtest.Pool(t, url))}
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := nodes[i%2].Append(context.Background(), Entry{Chain: "t1", Actor: "operator", Action: "x"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	mustIntact(t, nodes[0], "t1", n, nil, nil)
}

// An entry appended in the transaction of a change commits or rolls back
// with it, and a rolled-back append leaves no gap.
func TestPostgresLog_AppendTx(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.URL(t))
	l := NewPostgresLog(pool)

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendTx(ctx, tx, Entry{Chain: "t1", Actor: "operator", Action: "key.create"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := walkAll(t, l, "t1"); len(got) != 0 {
		t.Fatalf("a rolled-back append left %v", got)
	}

	// Many appends in one transaction: the chain lock is taken again by
	// the transaction that holds it, and each append sees the one before.
	const n = 2*walkBatch + 5 // enough for Walk to read several batches
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for range n {
			if _, err := l.AppendTx(ctx, tx, Entry{Chain: "t1", Actor: "operator", Action: "key.create"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := mustIntact(t, l, "t1", n, nil, nil)
	if last := mustList(t, l, Filter{Chain: "t1", Limit: 1}); last[0].Seq != n || last[0].Hash != r.Head {
		t.Errorf("head %d %s, verify reported %s", last[0].Seq, last[0].Hash, r.Head)
	}
}

// With the trigger in place, nobody (not even the table's owner, as the
// test user is) can change or remove an entry or an anchor.
func TestPostgresLog_AppendOnly(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.URL(t))
	l := NewPostgresLog(pool)
	_, priv := newKey(t)
	var head string
	for range 3 {
		head = mustAppend(t, l, Entry{Chain: "t1", Actor: "operator", Action: "x"}).Hash
	}
	if err := l.AppendAnchor(ctx, SignAnchor(priv, "t1", 3, head)); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`UPDATE audit_log SET target = 'forged' WHERE seq = 2`,
		`DELETE FROM audit_log WHERE seq = 3`,
		`DELETE FROM audit_log WHERE false`,
		`TRUNCATE audit_log`,
		`UPDATE audit_anchors SET seq = 2`,
		`DELETE FROM audit_anchors`,
		`TRUNCATE audit_anchors`,
	} {
		_, err := pool.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "append-only") {
			t.Errorf("%s: %v, want the append-only exception", sql, err)
		}
	}
	// Details that no Entry could hold are refused too, so that a walk
	// can read every row.
	for _, details := range []string{`{"n": 1}`, `{"n": null}`, `{"n": {"m": "x"}}`, `["x"]`, `"x"`} {
		_, err := pool.Exec(ctx, `INSERT INTO audit_log (chain, seq, time, actor, action, details, prev_hash, hash)
			VALUES ('t1', 4, now(), 'operator', 'x', $1, $2, $2)`, details, GenesisHash)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
			t.Errorf("details %s: %v, want a check violation", details, err)
		}
	}
	mustIntact(t, l, "t1", 3, nil, nil)
	if anchors, err := l.Anchors(ctx, "t1"); err != nil || len(anchors) != 1 {
		t.Errorf("anchors = %v, %v; want the one appended", anchors, err)
	}
}

// Each way of tampering with a chain, done with the trigger disabled as its
// owner could, is found and named by Verify.
func TestPostgresLog_Tampering(t *testing.T) {
	ctx := context.Background()
	pub, priv := newKey(t)

	// setup returns a log whose chain t1 has 10 entries, the table's pool,
	// and an anchor of its head stored in audit_anchors.
	setup := func(t *testing.T) (*PostgresLog, *pgxpool.Pool, []Anchor) {
		pool := dbtest.Pool(t, dbtest.URL(t))
		l := NewPostgresLog(pool)
		var head Entry
		for i := range 10 {
			head = mustAppend(t, l, Entry{Chain: "t1", Actor: "operator", Action: "key.create", Target: "key:" + string(rune('a'+i))})
		}
		mustAppend(t, l, Entry{Chain: "t2", Actor: "operator", Action: "x"})
		if err := l.AppendAnchor(ctx, SignAnchor(priv, "t1", head.Seq, head.Hash)); err != nil {
			t.Fatal(err)
		}
		anchors, err := l.Anchors(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		mustIntact(t, l, "t1", 10, anchors, pub)
		return l, pool, anchors
	}
	// broken verifies t1 and fails the test unless the report names seq
	// with the problem want.
	broken := func(t *testing.T, l Log, anchors []Anchor, seq int64, want string) {
		t.Helper()
		r, err := Verify(ctx, l, "t1", anchors, pub)
		if err != nil {
			t.Fatal(err)
		}
		if r.FirstBroken != seq || r.Problem != want {
			t.Errorf("verify = %+v\nwant first broken %d: %q", r, seq, want)
		}
		mustIntact(t, l, "t2", 1, nil, nil) // the other chain is untouched
	}

	t.Run("edited", func(t *testing.T) {
		l, pool, anchors := setup(t)
		tamper(t, pool, `UPDATE audit_log SET target = 'key:z' WHERE chain = 't1' AND seq = 7`)
		broken(t, l, nil, 7, "seq 7: hash does not match its contents (edited)")
		broken(t, l, anchors, 7, "seq 7: hash does not match its contents (edited)")
	})

	t.Run("details edited", func(t *testing.T) {
		l, pool, _ := setup(t)
		tamper(t, pool, `UPDATE audit_log SET details = '{"reached": "0"}' WHERE chain = 't1' AND seq = 2`)
		broken(t, l, nil, 2, "seq 2: hash does not match its contents (edited)")
	})

	t.Run("deleted", func(t *testing.T) {
		l, pool, anchors := setup(t)
		tamper(t, pool, `DELETE FROM audit_log WHERE chain = 't1' AND seq = 5`)
		broken(t, l, nil, 5, "seq 5 is missing (deleted)")
		broken(t, l, anchors, 5, "seq 5 is missing (deleted)")
	})

	t.Run("reordered", func(t *testing.T) {
		l, pool, _ := setup(t)
		// Entries 8 and 9 swap places: each keeps its contents and hashes
		// but takes the other's seq.
		tamper(t, pool, `UPDATE audit_log SET seq = CASE seq WHEN 8 THEN 1009 ELSE 1008 END WHERE chain = 't1' AND seq IN (8, 9)`)
		tamper(t, pool, `UPDATE audit_log SET seq = seq - 1000 WHERE chain = 't1' AND seq > 1000`)
		broken(t, l, nil, 8, "seq 8: prev_hash does not link to seq 7 (inserted or reordered)")
	})

	t.Run("contents swapped", func(t *testing.T) {
		l, pool, _ := setup(t)
		tamper(t, pool, `UPDATE audit_log a SET (time, actor, target, details, prev_hash, hash) =
			(SELECT b.time, b.actor, b.target, b.details, b.prev_hash, b.hash FROM audit_log b
			 WHERE b.chain = a.chain AND b.seq = CASE a.seq WHEN 3 THEN 4 ELSE 3 END)
			WHERE chain = 't1' AND seq IN (3, 4)`)
		broken(t, l, nil, 3, "seq 3: prev_hash does not link to seq 2 (inserted or reordered)")
	})

	t.Run("inserted", func(t *testing.T) {
		l, pool, _ := setup(t)
		// A well-formed entry forked from seq 5, slotted in after the head
		// (inserting needs no disabled trigger).
		var fifth Entry
		if err := l.Walk(ctx, "t1", func(e Entry) error {
			if e.Seq == 5 {
				fifth = e
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		forged := Entry{Chain: "t1", Time: fifth.Time, Actor: "operator", Action: "key.create", Target: "key:forged"}
		if err := link(&forged, 10, fifth.Hash); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO audit_log (chain, seq, time, actor, action, target, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			forged.Chain, forged.Seq, forged.Time, forged.Actor, forged.Action, forged.Target, forged.PrevHash, forged.Hash); err != nil {
			t.Fatal(err)
		}
		broken(t, l, nil, 11, "seq 11: prev_hash does not link to seq 10 (inserted or reordered)")
	})

	t.Run("truncated", func(t *testing.T) {
		l, pool, anchors := setup(t)
		tamper(t, pool, `DELETE FROM audit_log WHERE chain = 't1' AND seq > 7`)
		// What is left is a valid chain: only the anchor tells.
		mustIntact(t, l, "t1", 7, nil, nil)
		broken(t, l, anchors, 8, "chain ends at seq 7 but is anchored at seq 10 (truncated)")
	})

	t.Run("rewritten and re-anchored with another key", func(t *testing.T) {
		l, pool, anchors := setup(t)
		tamper(t, pool, `UPDATE audit_log SET target = 'key:z' WHERE chain = 't1' AND seq = 3`)
		rehash(t, l, pool, "t1")
		mustIntact(t, l, "t1", 10, nil, nil)
		// The forger signs the new head with a key of their own.
		_, forgerKey := newKey(t)
		head := mustList(t, l, Filter{Chain: "t1", Limit: 1})[0]
		forged := []Anchor{SignAnchor(forgerKey, "t1", head.Seq, head.Hash)}
		broken(t, l, forged, 10, "anchor at seq 10: signature does not verify (forged, or signed by another key)")
		// The genuine anchor no longer matches.
		broken(t, l, anchors, 10, "seq 10: hash differs from its anchor (rewritten)")
	})

	t.Run("truncated with its anchors", func(t *testing.T) {
		l, pool, anchors := setup(t)
		tamper(t, pool, `DELETE FROM audit_log WHERE chain = 't1' AND seq > 7`)
		tamper(t, pool, `DELETE FROM audit_anchors WHERE chain = 't1'`)
		stored, err := l.Anchors(ctx, "t1")
		if err != nil || len(stored) != 0 {
			t.Fatalf("anchors left: %v, %v", stored, err)
		}
		// Only a copy of the anchors kept outside the database tells.
		mustIntact(t, l, "t1", 7, stored, pub)
		broken(t, l, anchors, 8, "chain ends at seq 7 but is anchored at seq 10 (truncated)")
	})
}

// tamper runs sql as an attacker who owns the audit tables would: with
// their append-only triggers disabled. DISABLE TRIGGER is transactional, so
// no other session ever sees the triggers off.
func tamper(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, table := range []string{"audit_log", "audit_anchors"} {
			if _, err := tx.Exec(ctx, `ALTER TABLE `+table+` DISABLE TRIGGER `+table+`_append_only`); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, sql, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errors.New("changed nothing")
		}
		for _, table := range []string{"audit_log", "audit_anchors"} {
			if _, err := tx.Exec(ctx, `ALTER TABLE `+table+` ENABLE TRIGGER `+table+`_append_only`); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("tamper: %s: %v", sql, err)
	}
}

// rehash recomputes every link of chain after an edit, as a forger who
// knows the rule would, leaving a chain that verifies.
func rehash(t *testing.T, l Log, pool *pgxpool.Pool, chain string) {
	t.Helper()
	entries := walkAll(t, l, chain)
	prev := GenesisHash
	for i, e := range entries {
		if err := link(&e, int64(i), prev); err != nil {
			t.Fatal(err)
		}
		prev = e.Hash
		if e.Hash != entries[i].Hash {
			tamper(t, pool, `UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE chain = $3 AND seq = $4`,
				e.PrevHash, e.Hash, chain, e.Seq)
		}
	}
}
