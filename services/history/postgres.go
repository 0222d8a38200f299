package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	// maxBatchBytes caps the event names and data of one commit, whatever
	// MaxBatch allows.
	maxBatchBytes = 1 << 20
	// commitTimeout bounds a commit. Callers whose events are being
	// committed wait for it even if their ctx ends, as the outcome decides
	// their answer.
	commitTimeout = 10 * time.Second
	// trimBatch caps the rows one Trim statement deletes, so that none
	// runs long.
	trimBatch = 10000
)

// PostgresOptions configures a Postgres store; the zero value is the
// default.
type PostgresOptions struct {
	// MaxBatch caps the events of one commit. Default 512.
	MaxBatch int
	// Log receives commit failures. Default: discarded.
	Log *slog.Logger
}

// Postgres is the Store of a cluster, in the history_channels and
// history_events tables (the schema of package migrations), shared by
// every node.
//
// Appends are group committed: Append queues its events and waits while
// one committer goroutine commits everything queued, up to MaxBatch events
// or 1 MiB, in a single statement, so that many publishers share each
// commit. The statement first adds each channel's event count to its
// counter row, which locks the row until the commit, then inserts the
// events numbered from it. Other nodes' commits to the same channels wait
// for the lock, so sequence order is commit order; counter rows are locked
// in (app id, channel) order, so that two commits never deadlock.
//
// A caller whose ctx ends while its events are queued gets ctx's error and
// its events are never committed; once the committer has taken them, the
// caller waits for the commit (see commitTimeout). Reads, Heads and Trim
// honour ctx; statement_timeout is the pool's to set.
type Postgres struct {
	pool      *pgxpool.Pool
	maxBatch  int
	trimBatch int
	log       *slog.Logger

	mu     sync.Mutex
	queue  []*request // waiting for the committer, oldest first
	closed bool

	wake chan struct{} // holds a token when the queue may have requests
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the committer has returned

	saltMu sync.Mutex
	salt   []byte // the database's epoch salt, once read
}

// saltOf returns the database's epoch salt (table history_salt, made by
// the migration), reading it once.
func (p *Postgres) saltOf(ctx context.Context) ([]byte, error) {
	p.saltMu.Lock()
	defer p.saltMu.Unlock()
	if p.salt == nil {
		var salt string
		if err := p.pool.QueryRow(ctx, `SELECT salt FROM history_salt`).Scan(&salt); err != nil {
			return nil, fmt.Errorf("history: epoch salt: %w", err)
		}
		p.salt = []byte(salt)
	}
	return p.salt, nil
}

var _ Store = (*Postgres)(nil)

// request is one Append waiting for its commit.
type request struct {
	ctx    context.Context
	events []Append
	bytes  int
	pos    []Position
	err    error
	done   chan struct{} // closed once pos or err is set
}

func (r *request) answer(pos []Position, err error) {
	r.pos, r.err = pos, err
	close(r.done)
}

// NewPostgres returns a store on pool, whose schema must be migrated, and
// starts its committer. Close stops it; it does not close the pool.
func NewPostgres(pool *pgxpool.Pool, opts PostgresOptions) *Postgres {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	p := &Postgres{
		pool: pool, maxBatch: opts.MaxBatch, trimBatch: trimBatch, log: opts.Log,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go p.run()
	return p
}

func (p *Postgres) Append(ctx context.Context, events []Append) ([]Position, error) {
	if err := check(events); err != nil {
		return nil, err
	}
	r := &request{ctx: ctx, events: events, done: make(chan struct{})}
	for _, a := range events {
		r.bytes += len(a.Event) + len(a.Data)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if len(events) == 0 {
		p.mu.Unlock()
		return []Position{}, nil
	}
	p.queue = append(p.queue, r)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default: // the committer is already due to look
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		if p.dequeue(r) {
			return nil, ctx.Err()
		}
		<-r.done
	}
	return r.pos, r.err
}

// dequeue removes r from the queue and reports whether it was still there.
func (p *Postgres) dequeue(r *request) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.Index(p.queue, r)
	if i < 0 {
		return false
	}
	p.queue = slices.Delete(p.queue, i, i+1)
	return true
}

// run is the committer.
func (p *Postgres) run() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
		}
		for batch := p.take(); len(batch) > 0; batch = p.take() {
			p.commit(batch)
		}
	}
}

// take removes the next batch from the queue: whole requests, oldest
// first, within maxBatch events and maxBatchBytes but at least one. It
// answers the requests whose ctx has ended instead. It returns nothing
// once the store is closed.
func (p *Postgres) take() []*request {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	var batch []*request
	events, bytes, n := 0, 0, 0
	for _, r := range p.queue {
		if len(batch) > 0 && (events+len(r.events) > p.maxBatch || bytes+r.bytes > maxBatchBytes) {
			break
		}
		n++
		if err := r.ctx.Err(); err != nil {
			r.answer(nil, err)
			continue
		}
		batch = append(batch, r)
		events += len(r.events)
		bytes += r.bytes
	}
	p.queue = slices.Delete(p.queue, 0, n)
	return batch
}

// appendSQL numbers and inserts a batch of events in one statement,
// which is its own transaction, and returns their positions in order.
// Within a channel, back counts the batch's events after an event, so its
// seq is the channel's new head minus back. heads adds each channel's
// count to its counter row and keeps the newest max_events, locking the
// rows in (app id, channel) order, so that two commits never deadlock.
const appendSQL = `WITH e AS (
	SELECT *, count(*) OVER w AS n, count(*) OVER w - row_number() OVER (w ORDER BY i) AS back
	FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::text[])
		WITH ORDINALITY AS e (app_id, channel, event, data, socket_id, user_id, max_events, max_age, epoch, i)
	WINDOW w AS (PARTITION BY app_id, channel)
), heads AS (
	INSERT INTO history_channels AS c (app_id, channel, epoch, seq, max_events)
	SELECT DISTINCT ON (app_id, channel) app_id, channel, epoch, n, max_events
	FROM e ORDER BY app_id, channel, i DESC
	ON CONFLICT (app_id, channel) DO UPDATE SET seq = c.seq + excluded.seq, max_events = excluded.max_events
	RETURNING app_id, channel, epoch, seq
), inserted AS (
	INSERT INTO history_events (app_id, channel, seq, event, data, socket_id, user_id, time, expires_at)
	SELECT e.app_id, e.channel, h.seq - e.back, e.event, e.data, e.socket_id, e.user_id, now(),
		now() + make_interval(secs => nullif(e.max_age, 0) / 1e9)
	FROM e JOIN heads h USING (app_id, channel)
)
SELECT h.epoch, h.seq - e.back FROM e JOIN heads h USING (app_id, channel) ORDER BY e.i`

// commit commits batch and answers its requests: all with their
// positions, or all with the error.
func (p *Postgres) commit(batch []*request) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	salt, err := p.saltOf(ctx)
	if err != nil {
		for _, r := range batch {
			r.answer(nil, err)
		}
		return
	}
	var e struct {
		app, channel, event, socket, user, epoch []string
		data                                     [][]byte
		maxEvents, maxAge                        []int64
	}
	for _, r := range batch {
		for _, a := range r.events {
			e.app, e.channel, e.event = append(e.app, a.AppID), append(e.channel, a.Channel), append(e.event, a.Event)
			e.socket, e.user = append(e.socket, a.SocketID), append(e.user, a.UserID)
			if a.Data == nil {
				a.Data = []byte{} // pgx would send NULL
			}
			e.data = append(e.data, a.Data)
			e.maxEvents = append(e.maxEvents, int64(a.Retention.MaxEvents))
			e.maxAge = append(e.maxAge, int64(a.Retention.MaxAge))
			// One for each event, for simplicity: a channel's first commit
			// keeps one of them, later commits none.
			e.epoch = append(e.epoch, epochOf(salt, ChannelKey{a.AppID, a.Channel}))
		}
	}
	rows, _ := p.pool.Query(ctx, appendSQL, e.app, e.channel, e.event, e.data, e.socket, e.user, e.maxEvents, e.maxAge, e.epoch)
	// Query's error, if any, is also rows', which CollectRows returns.
	pos, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Position, error) {
		var at Position
		err := row.Scan(&at.Epoch, &at.Seq)
		return at, err
	})
	if err == nil && len(pos) != len(e.app) {
		err = fmt.Errorf("%d positions for %d events", len(pos), len(e.app))
	}
	if err != nil {
		p.log.Warn("history: commit failed", "requests", len(batch), "events", len(e.app), "err", err)
		for _, r := range batch {
			r.answer(nil, fmt.Errorf("history: append: %w", err))
		}
		return
	}
	for _, r := range batch {
		n := len(r.events)
		r.answer(pos[:n:n], nil)
		pos = pos[n:]
	}
}

// readSQL reads a page in one statement, so in one snapshot: the head,
// the oldest held event and the events agree. When no event is after $3,
// the LEFT JOIN yields one row of the channel with seq 0.
const readSQL = `SELECT c.epoch, c.seq, coalesce(o.seq, c.seq + 1),
	coalesce(e.seq, 0), coalesce(e.event, ''), coalesce(e.data, ''), coalesce(e.socket_id, ''),
	coalesce(e.user_id, ''), coalesce(e.time, 'epoch')
FROM history_channels c
CROSS JOIN LATERAL (SELECT min(seq) AS seq FROM history_events
	WHERE app_id = c.app_id AND channel = c.channel) o
LEFT JOIN LATERAL (SELECT * FROM history_events
	WHERE app_id = c.app_id AND channel = c.channel AND seq > $3 ORDER BY seq LIMIT $4) e ON true
WHERE c.app_id = $1 AND c.channel = $2
ORDER BY e.seq`

func (p *Postgres) Read(ctx context.Context, appID, channel string, after uint64, limit int) (Page, error) {
	if p.stopped() {
		return Page{}, ErrClosed
	}
	salt, err := p.saltOf(ctx)
	if err != nil {
		return Page{}, err
	}
	page := Page{Epoch: epochOf(salt, ChannelKey{appID, channel}), Oldest: 1}
	rows, _ := p.pool.Query(ctx, readSQL, appID, channel, min(after, math.MaxInt64), clampLimit(limit))
	var ev Event
	_, err = pgx.ForEachRow(rows, []any{&page.Epoch, &page.Head, &page.Oldest,
		&ev.Seq, &ev.Event, &ev.Data, &ev.SocketID, &ev.UserID, &ev.Time}, func() error {
		if ev.Seq > 0 {
			ev.Time = ev.Time.UTC()
			page.Events = append(page.Events, ev)
		}
		return nil
	})
	if err != nil {
		return Page{}, fmt.Errorf("history: read %s/%s: %w", appID, channel, err)
	}
	// Commits in seq order and trims of prefixes leave no hole; should one
	// appear anyway, the page stops before it rather than hide it.
	first := max(after+1, page.Oldest)
	for i, e := range page.Events {
		if e.Seq != first+uint64(i) {
			page.Events = page.Events[:i]
			break
		}
	}
	return page, nil
}

func (p *Postgres) Heads(ctx context.Context, channels []ChannelKey) ([]Position, error) {
	if p.stopped() {
		return nil, ErrClosed
	}
	salt, err := p.saltOf(ctx)
	if err != nil {
		return nil, err
	}
	apps, names := make([]string, len(channels)), make([]string, len(channels))
	pos := make([]Position, len(channels))
	for i, k := range channels {
		apps[i], names[i] = k.AppID, k.Channel
		pos[i].Epoch = epochOf(salt, k)
	}
	rows, _ := p.pool.Query(ctx, `SELECT k.i, c.epoch, c.seq
		FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k (app_id, channel, i)
		JOIN history_channels c ON c.app_id = k.app_id AND c.channel = k.channel`, apps, names)
	var (
		i  int
		at Position
	)
	if _, err := pgx.ForEachRow(rows, []any{&i, &at.Epoch, &at.Seq}, func() error {
		pos[i-1] = at
		return nil
	}); err != nil {
		return nil, fmt.Errorf("history: heads: %w", err)
	}
	return pos, nil
}

// trimCountSQL deletes up to $3 events beyond their channel's max_events,
// the oldest of each channel first, in channels from ($1, $2) on. It
// returns how many it deleted and the last channel, where the next
// statement starts, so that no statement scans the channels already done.
//
// Like trimAgeSQL, it reads each channel's events in its index (the
// LATERAL subquery, in channel order so that the LIMIT stops the scan)
// and deletes them by ctid: joined on the key, PostgreSQL prefers to scan
// the whole table.
const trimCountSQL = `WITH doomed AS (
	SELECT e.ctid
	FROM history_channels c
	CROSS JOIN LATERAL (SELECT ctid, seq FROM history_events
		WHERE app_id = c.app_id AND channel = c.channel AND seq <= c.seq - c.max_events
		ORDER BY seq LIMIT $3) e
	WHERE c.max_events > 0 AND (c.app_id, c.channel) >= ($1, $2)
	ORDER BY c.app_id, c.channel, e.seq
	LIMIT $3
), gone AS (
	DELETE FROM history_events WHERE ctid = ANY (ARRAY (SELECT ctid FROM doomed))
	RETURNING app_id, channel
)
SELECT count(*) OVER (), app_id, channel FROM gone ORDER BY app_id DESC, channel DESC LIMIT 1`

// trimAgeSQL deletes up to $2 events of the channels of up to $2 expired
// events: in each, every event up to its newest expired one. Expiry is
// not in seq order when MaxAge shrinks (or when a commit waited for a
// lock), and deleting only the expired events would leave holes.
const trimAgeSQL = `WITH expired AS (
	SELECT app_id, channel, max(seq) AS seq
	FROM (SELECT app_id, channel, seq FROM history_events
		WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2) x
	GROUP BY app_id, channel
), doomed AS (
	SELECT e.ctid
	FROM expired x
	CROSS JOIN LATERAL (SELECT ctid, seq FROM history_events
		WHERE app_id = x.app_id AND channel = x.channel AND seq <= x.seq
		ORDER BY seq LIMIT $2) e
	ORDER BY x.app_id, x.channel, e.seq
	LIMIT $2
)
DELETE FROM history_events WHERE ctid = ANY (ARRAY (SELECT ctid FROM doomed))`

// Trim deletes in statements of at most 10,000 rows, each its own
// transaction. Deleted events lock nothing that Append needs: it inserts
// new rows and never reads old ones, and Trim only reads counter rows.
// Each statement deletes whole prefixes of channels, so readers never see
// a hole. On error, what the statements before deleted stays deleted.
func (p *Postgres) Trim(ctx context.Context, now time.Time) (int, error) {
	if p.stopped() {
		return 0, ErrClosed
	}
	removed := 0
	var app, channel string
	for {
		var n int
		err := p.pool.QueryRow(ctx, trimCountSQL, app, channel, p.trimBatch).Scan(&n, &app, &channel)
		if errors.Is(err, pgx.ErrNoRows) {
			break
		}
		if err != nil {
			return removed, fmt.Errorf("history: trim: %w", err)
		}
		removed += n
		if n < p.trimBatch {
			break
		}
	}
	for {
		tag, err := p.pool.Exec(ctx, trimAgeSQL, now, p.trimBatch)
		if err != nil {
			return removed, fmt.Errorf("history: trim: %w", err)
		}
		removed += int(tag.RowsAffected())
		if tag.RowsAffected() < int64(p.trimBatch) {
			return removed, nil
		}
	}
}

// Close answers the queued Appends with ErrClosed and waits for the commit
// under way, if any.
func (p *Postgres) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	queued := p.queue
	p.queue = nil
	close(p.stop)
	p.mu.Unlock()
	for _, r := range queued {
		r.answer(nil, ErrClosed)
	}
	<-p.done
	return nil
}

func (p *Postgres) stopped() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}
