package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresLog is the Log of a cluster, in the audit_log table (the schema
// of package migrations), and an AnchorStore in audit_anchors. A trigger
// makes both tables refuse UPDATE, DELETE and TRUNCATE.
//
// Queries honour ctx; statement_timeout is the pool's to set. Every
// statement is parameterised.
type PostgresLog struct{ pool *pgxpool.Pool }

var (
	_ Log         = (*PostgresLog)(nil)
	_ AnchorStore = (*PostgresLog)(nil)
)

// NewPostgresLog returns a log on pool, whose schema must be migrated.
func NewPostgresLog(pool *pgxpool.Pool) *PostgresLog { return &PostgresLog{pool: pool} }

const entryColumns = `seq, chain, time, actor, actor_ip, tenant_id, app_id, action, target, reason, details, prev_hash, hash`

// scanEntry reads a row of entryColumns.
func scanEntry(row pgx.CollectableRow) (Entry, error) {
	var e Entry
	err := row.Scan(&e.Seq, &e.Chain, &e.Time, &e.Actor, &e.ActorIP, &e.TenantID, &e.AppID,
		&e.Action, &e.Target, &e.Reason, &e.Details, &e.PrevHash, &e.Hash)
	e.Time = e.Time.UTC()
	e.Details = cloneDetails(e.Details) // {} comes back as nil, as from the memory log
	return e, err
}

func (l *PostgresLog) Append(ctx context.Context, e Entry) (Entry, error) {
	var out Entry
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		var err error
		out, err = l.AppendTx(ctx, tx, e)
		return err
	})
	return out, err
}

// AppendTx is Append inside tx, so that a change and its audit entry commit
// or roll back together. It holds the chain's lock until tx ends: keep the
// transaction short, as every other append to the chain waits for it (up
// to the pool's statement_timeout, which bounds the wait for the lock).
//
// tx must be READ COMMITTED (PostgreSQL's default), so that the chain's
// head is read after the lock is taken. In a REPEATABLE READ or
// SERIALIZABLE transaction that started before another append committed,
// the insert fails on the primary key and the caller must retry the
// transaction; the chain is never forked.
func (l *PostgresLog) AppendTx(ctx context.Context, tx pgx.Tx, e Entry) (Entry, error) {
	e, err := prepare(e, time.Now())
	if err != nil {
		return Entry{}, err
	}
	// The lock serialises the appends of one chain across every node; the
	// key is derived from the chain, so other chains do not wait. A hash
	// collision between two chains only makes them take turns.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('herald-audit:' || $1))`, e.Chain); err != nil {
		return Entry{}, fmt.Errorf("audit: lock chain %s: %w", e.Chain, err)
	}
	var (
		headSeq  int64
		headHash string
	)
	err = tx.QueryRow(ctx, `SELECT seq, hash FROM audit_log WHERE chain = $1 ORDER BY seq DESC LIMIT 1`, e.Chain).
		Scan(&headSeq, &headHash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Entry{}, fmt.Errorf("audit: read head of %s: %w", e.Chain, err)
	}
	if err := link(&e, headSeq, headHash); err != nil {
		return Entry{}, err
	}
	details := e.Details
	if details == nil {
		details = map[string]string{} // pgx would send a nil map as NULL
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_log (`+entryColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		e.Seq, e.Chain, e.Time, e.Actor, e.ActorIP, e.TenantID, e.AppID,
		e.Action, e.Target, e.Reason, details, e.PrevHash, e.Hash); err != nil {
		return Entry{}, fmt.Errorf("audit: append to %s: %w", e.Chain, err)
	}
	e.Details = cloneDetails(e.Details)
	return e, nil
}

func (l *PostgresLog) List(ctx context.Context, f Filter) ([]Entry, error) {
	f, err := f.check()
	if err != nil {
		return nil, err
	}
	// Only the filters in use are in the query, so that every shape gets a
	// plan that uses the index it can.
	var (
		where strings.Builder
		args  = []any{f.Chain}
	)
	where.WriteString("chain = $1")
	and := func(format string, v any) {
		args = append(args, v)
		fmt.Fprintf(&where, " AND "+format, len(args))
	}
	if f.Before > 0 {
		and("seq < $%d", f.Before)
	}
	if f.AppID != "" {
		and("app_id = $%d", f.AppID)
	}
	if f.Actor != "" {
		and("actor = $%d", f.Actor)
	}
	if f.ActionPrefix != "" {
		and("starts_with(action, $%d)", f.ActionPrefix) // not LIKE, in which _ and % are wildcards
	}
	if !f.Since.IsZero() {
		and("time >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		and("time < $%d", f.Until)
	}
	args = append(args, f.Limit)
	rows, err := l.pool.Query(ctx, `SELECT `+entryColumns+` FROM audit_log WHERE `+where.String()+
		` ORDER BY seq DESC LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("audit: list %s: %w", f.Chain, err)
	}
	entries, err := pgx.CollectRows(rows, scanEntry)
	if err != nil {
		return nil, fmt.Errorf("audit: list %s: %w", f.Chain, err)
	}
	if entries == nil {
		entries = []Entry{}
	}
	return entries, nil
}

func (l *PostgresLog) Chains(ctx context.Context) ([]string, error) {
	// A skip scan of the primary key: one index probe per chain rather than
	// reading every entry of a log that only grows.
	rows, err := l.pool.Query(ctx, `WITH RECURSIVE c (chain) AS (
		(SELECT chain FROM audit_log ORDER BY chain LIMIT 1)
		UNION ALL
		SELECT (SELECT a.chain FROM audit_log a WHERE a.chain > c.chain ORDER BY a.chain LIMIT 1)
		FROM c WHERE c.chain IS NOT NULL
	) SELECT chain FROM c WHERE chain IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("audit: chains: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("audit: chains: %w", err)
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// walkBatch is how many entries Walk reads per query. Reading in batches
// keeps each statement short, whatever fn does and however long the chain.
const walkBatch = 1000

func (l *PostgresLog) Walk(ctx context.Context, chain string, fn func(Entry) error) error {
	var after int64
	for {
		rows, err := l.pool.Query(ctx, `SELECT `+entryColumns+` FROM audit_log
			WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3`, chain, after, walkBatch)
		if err != nil {
			return fmt.Errorf("audit: walk %s: %w", chain, err)
		}
		entries, err := pgx.CollectRows(rows, scanEntry)
		if err != nil {
			return fmt.Errorf("audit: walk %s: %w", chain, err)
		}
		for _, e := range entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(entries) < walkBatch {
			return nil
		}
		after = entries[len(entries)-1].Seq
	}
}

func (l *PostgresLog) AppendAnchor(ctx context.Context, a Anchor) error {
	if err := a.check(); err != nil {
		return err
	}
	_, err := l.pool.Exec(ctx, `INSERT INTO audit_anchors (chain, seq, head, signature) VALUES ($1, $2, $3, $4)`,
		a.Chain, a.Seq, a.Head, a.Signature)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return fmt.Errorf("%w: chain %s, seq %d", ErrAnchorExists, a.Chain, a.Seq)
	}
	if err != nil {
		return fmt.Errorf("audit: append anchor to %s: %w", a.Chain, err)
	}
	return nil
}

func (l *PostgresLog) Anchors(ctx context.Context, chain string) ([]Anchor, error) {
	rows, err := l.pool.Query(ctx, `SELECT chain, seq, head, signature FROM audit_anchors WHERE chain = $1 ORDER BY seq`, chain)
	if err != nil {
		return nil, fmt.Errorf("audit: anchors of %s: %w", chain, err)
	}
	anchors, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Anchor])
	if err != nil {
		return nil, fmt.Errorf("audit: anchors of %s: %w", chain, err)
	}
	if anchors == nil {
		anchors = []Anchor{}
	}
	return anchors, nil
}
