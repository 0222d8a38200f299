package history

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/dbtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestPostgres(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return newPostgres(t, dbtest.Pool(t, dbtest.URL(t))) })
}

// newPostgres returns a store on pool, closed when the test ends.
func newPostgres(t testing.TB, pool *pgxpool.Pool) *Postgres {
	s := NewPostgres(pool, PostgresOptions{})
	t.Cleanup(func() { s.Close() })
	return s
}

// Two nodes, each with its own pool, append to the same channels at once,
// each call to three channels in a random order. Numbers have no gap and no
// duplicate, and a reader never sees a number committed before a lower
// one.
func TestPostgres_TwoNodes(t *testing.T) {
	ctx := context.Background()
	url := dbtest.URL(t)
	nodes := []*Postgres{newPostgres(t, dbtest.Pool(t, url)), newPostgres(t, dbtest.Pool(t, url))}
	reader := dbtest.Pool(t, url)

	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			// One statement, so one snapshot of counters and events.
			rows, _ := reader.Query(ctx, `SELECT c.channel, c.seq, count(e.seq), coalesce(max(e.seq), 0)
				FROM history_channels c LEFT JOIN history_events e USING (app_id, channel)
				GROUP BY c.channel, c.seq`)
			var (
				channel         string
				head, n, maxSeq int64
			)
			if _, err := pgx.ForEachRow(rows, []any{&channel, &head, &n, &maxSeq}, func() error {
				if n != head || maxSeq != head {
					return fmt.Errorf("%s: a snapshot holds %d events up to %d under head %d", channel, n, maxSeq, head)
				}
				return nil
			}); err != nil {
				t.Error(err)
				return
			}
		}
	})

	const callers, calls = 32, 20
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			last := map[string]uint64{}
			for i := range calls {
				events := []Append{
					{AppID: "a", Channel: "x", Event: "e", Data: fmt.Appendf(nil, "%d/%d/0", c, i)},
					{AppID: "a", Channel: "y", Event: "e", Data: fmt.Appendf(nil, "%d/%d/y", c, i)},
					{AppID: "a", Channel: "z", Event: "e", Data: fmt.Appendf(nil, "%d/%d/z", c, i)},
					{AppID: "a", Channel: "x", Event: "e", Data: fmt.Appendf(nil, "%d/%d/1", c, i)},
				}
				rand.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
				pos, err := nodes[c%2].Append(ctx, events)
				if err != nil {
					t.Error(err)
					return
				}
				for k, p := range pos {
					ch := events[k].Channel
					if p.Seq <= last[ch] {
						t.Errorf("caller %d: %s/%d after %d", c, ch, p.Seq, last[ch])
					}
					last[ch] = p.Seq
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()

	for ch, n := range map[string]int{"x": 2 * callers * calls, "y": callers * calls, "z": callers * calls} {
		page := readAll(t, nodes[1], "a", ch)
		seen := map[string]bool{}
		for _, e := range page.Events {
			seen[string(e.Data)] = true
		}
		if page.Head != uint64(n) || len(page.Events) != n || len(seen) != n {
			t.Errorf("%s: head %d, %d events, %d distinct; want %d of each", ch, page.Head, len(page.Events), len(seen), n)
		}
	}
}

// A caller whose ctx ends while its events are queued is answered at once
// and its events are never committed; one whose events are being committed
// gets the commit's outcome.
func TestPostgres_CancelWhileQueued(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.URL(t))
	s := newPostgres(t, pool)
	mustAppend(t, s, ev("a", "x", "e"))

	tx := lockChannel(t, pool, "a", "x")
	takenCtx, cancelTaken := context.WithCancel(ctx)
	taken := make(chan error, 1)
	go func() {
		_, err := s.Append(takenCtx, []Append{ev("a", "x", "taken")})
		taken <- err
	}()
	waitBlocked(t, pool, tx)

	queuedCtx, cancelQueued := context.WithCancel(ctx)
	queued := make(chan error, 1)
	go func() {
		_, err := s.Append(queuedCtx, []Append{ev("a", "y", "queued")})
		queued <- err
	}()
	waitQueued(t, s, 1)
	cancelQueued()
	if err := <-queued; !errors.Is(err, context.Canceled) {
		t.Errorf("queued Append = %v, want context.Canceled", err)
	}
	cancelTaken()
	select {
	case err := <-taken:
		t.Fatalf("Append returned %v before its commit", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-taken; err != nil {
		t.Errorf("Append being committed = %v, want its commit's outcome", err)
	}
	if heads := mustHeads(t, s, ChannelKey{"a", "x"}, ChannelKey{"a", "y"}); heads[0].Seq != 2 || heads[1].Seq != 0 {
		t.Errorf("heads %v, want x at 2 and y without history", heads)
	}
}

// When a commit fails, every caller of its batch gets the error and none
// of their events is committed.
func TestPostgres_FailedCommitFailsItsBatch(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.URL(t))
	s := newPostgres(t, pool)
	mustAppend(t, s, ev("a", "x", "e"), ev("a", "x", "e"), ev("a", "w", "e"))

	// Setting x's counter back makes the next commit to x collide with
	// event 2; the lock on w holds the committer while the batch queues.
	tx := lockChannel(t, pool, "a", "w")
	if _, err := tx.Exec(ctx, `UPDATE history_channels SET seq = 1 WHERE channel = 'x'`); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, []Append{ev("a", "w", "e")})
		blocked <- err
	}()
	waitBlocked(t, pool, tx)
	errs := make(chan error, 2)
	for _, ch := range []string{"x", "y"} {
		go func() {
			_, err := s.Append(ctx, []Append{ev("a", ch, "e")})
			errs <- err
		}()
	}
	waitQueued(t, s, 2)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err == nil {
			t.Error("an Append of the failed batch succeeded")
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM history_events`).Scan(&n); err != nil || n != 4 {
		t.Errorf("%d events (%v), want the 4 committed before and beside the failed batch", n, err)
	}
	if heads := mustHeads(t, s, ChannelKey{"a", "y"}); heads[0].Seq != 0 {
		t.Errorf("y has head %v, want none", heads[0])
	}
}

// Trim's statements stop and resume within and across channels and apps.
func TestPostgres_TrimInBatches(t *testing.T) {
	s := newPostgres(t, dbtest.Pool(t, dbtest.URL(t)))
	s.trimBatch = 3
	for _, app := range []string{"a", "b"} {
		for _, ch := range []string{"c1", "c2", "c3"} {
			appendN(t, s, app, ch, 10, Retention{MaxEvents: 2})
			appendN(t, s, app, "age-"+ch, 5, Retention{MaxAge: time.Hour})
			appendN(t, s, app, "age-"+ch, 1, Retention{})
		}
	}
	if n := mustTrim(t, s, time.Now().Add(2*time.Hour)); n != 6*8+6*5 {
		t.Errorf("Trim removed %d, want %d", n, 6*8+6*5)
	}
	for _, app := range []string{"a", "b"} {
		for _, ch := range []string{"c1", "c2", "c3"} {
			if page := mustRead(t, s, app, ch, 0, 10); page.Oldest != 9 || len(page.Events) != 2 {
				t.Errorf("%s/%s holds %v from %d, want 9..10", app, ch, eventSeqs(page), page.Oldest)
			}
			if page := mustRead(t, s, app, "age-"+ch, 0, 10); page.Oldest != 6 || len(page.Events) != 1 {
				t.Errorf("%s/age-%s holds %v from %d, want 6", app, ch, eventSeqs(page), page.Oldest)
			}
		}
	}
}

// lockChannel locks a channel's counter row, as a commit of another node
// does, in a transaction that the test must end.
func lockChannel(t *testing.T, pool *pgxpool.Pool, app, channel string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, `SELECT 1 FROM history_channels WHERE app_id = $1 AND channel = $2 FOR UPDATE`, app, channel); err != nil {
		t.Fatal(err)
	}
	return tx
}

// waitBlocked waits until a statement waits for a lock of tx.
func waitBlocked(t *testing.T, pool *pgxpool.Pool, tx pgx.Tx) {
	t.Helper()
	pid := tx.Conn().PgConn().PID()
	waitFor(t, "a commit blocked by the test's lock", func() bool {
		var blocked bool
		err := pool.QueryRow(context.Background(),
			`SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE $1::int = ANY (pg_blocking_pids(pid)))`, pid).Scan(&blocked)
		if err != nil {
			t.Fatal(err)
		}
		return blocked
	})
}

// waitQueued waits until n requests are queued.
func waitQueued(t *testing.T, s *Postgres, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d queued requests", n), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.queue) == n
	})
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 5 s", what)
		}
	}
}
