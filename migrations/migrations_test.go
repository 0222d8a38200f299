package migrations

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/heraldrt/herald/internal/pgtest"
)

func embeddedNames(t *testing.T) []string {
	t.Helper()
	ms, err := load(files)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ms {
		names = append(names, m.name)
	}
	return names
}

func TestEmbeddedFiles(t *testing.T) {
	names := embeddedNames(t)
	if len(names) == 0 || names[0] != "0001_control_plane.sql" {
		t.Fatalf("embedded migrations %v, want 0001_control_plane.sql first", names)
	}
}

func TestLoad(t *testing.T) {
	ms, err := load(fstest.MapFS{
		"0010_c.sql": {Data: []byte("c")},
		"0002_b.sql": {Data: []byte("b")},
		"0001_a.sql": {Data: []byte("a")},
		"README.md":  {Data: []byte("not a migration")},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.name+"="+m.sql)
	}
	if want := []string{"0001_a.sql=a", "0002_b.sql=b", "0010_c.sql=c"}; !slices.Equal(got, want) {
		t.Errorf("load = %v, want %v (ordered by version, not by name)", got, want)
	}

	for name, fsys := range map[string]fstest.MapFS{
		"no version":    {"control.sql": {}},
		"zero version":  {"0000_x.sql": {}},
		"same version":  {"0001_a.sql": {}, "1_b.sql": {}},
		"not a number":  {"v1_a.sql": {}},
		"no underscore": {"0001.sql": {}},
		"negative":      {"-1_x.sql": {}},
	} {
		if _, err := load(fsys); err == nil {
			t.Errorf("%s: load accepted %v", name, fsys)
		}
	}
}

func TestApply_TwiceIsANoOp(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Schema(t)
	all := embeddedNames(t)

	applied, err := Apply(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied, all) {
		t.Fatalf("first Apply applied %v, want %v", applied, all)
	}
	applied, err = Apply(ctx, pool)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second Apply = %v, %v; want nothing applied", applied, err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n != len(all) {
		t.Fatalf("schema_migrations has %d rows (%v), want %d", n, err, len(all))
	}
	// The schema is really there.
	for _, table := range []string{"tenants", "apps", "app_keys"} {
		var ok bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing after Apply (%v)", table, err)
		}
	}
}

func TestApply_ConcurrentAppliesEachFileOnce(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Schema(t)
	all := embeddedNames(t)

	const nodes = 4
	var wg sync.WaitGroup
	results := make([][]string, nodes)
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Go(func() { results[i], errs[i] = Apply(ctx, pool) })
	}
	wg.Wait()
	var applied []string
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("Apply %d: %v", i, errs[i])
		}
		applied = append(applied, results[i]...)
	}
	slices.Sort(applied)
	if !slices.Equal(applied, all) {
		t.Errorf("concurrent Apply calls applied %v together, want each of %v exactly once", applied, all)
	}
}

func TestPending(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Schema(t)
	all := embeddedNames(t)

	before, err := Pending(ctx, pool)
	if err != nil || !slices.Equal(before, all) {
		t.Fatalf("Pending on an empty schema = %v, %v; want %v", before, err, all)
	}
	if _, err := Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	after, err := Pending(ctx, pool)
	if err != nil || len(after) != 0 {
		t.Fatalf("Pending after Apply = %v, %v; want none", after, err)
	}

	// A file added by a newer release is pending until applied.
	next := fstest.MapFS{}
	ms, _ := load(files)
	for _, m := range ms {
		next[m.name] = &fstest.MapFile{Data: []byte(m.sql)}
	}
	next["9999_later.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE later (id int)")}
	newer, err := load(next)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := pending(ctx, pool, newer); err != nil || !slices.Equal(p, []string{"9999_later.sql"}) {
		t.Fatalf("pending with a new file = %v, %v", p, err)
	}
}

// A failing file is rolled back whole and not recorded; the files before it
// stay applied, and a fixed file is applied on the next run.
func TestApply_FailedFileIsRolledBack(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Schema(t)
	bad, err := load(fstest.MapFS{
		"0001_ok.sql":  {Data: []byte("CREATE TABLE one (id int)")},
		"0002_bad.sql": {Data: []byte("CREATE TABLE two (id int); SELECT no_such_function()")},
	})
	if err != nil {
		t.Fatal(err)
	}
	applied, err := apply(ctx, pool, bad)
	if err == nil || !strings.Contains(err.Error(), "0002_bad.sql") {
		t.Fatalf("apply = %v, want an error naming 0002_bad.sql", err)
	}
	if !slices.Equal(applied, []string{"0001_ok.sql"}) {
		t.Errorf("applied %v before the failure, want [0001_ok.sql]", applied)
	}
	var two bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('two') IS NOT NULL").Scan(&two); err != nil || two {
		t.Errorf("table of the failed file exists (%v)", err)
	}
	if p, err := pending(ctx, pool, bad); err != nil || !slices.Equal(p, []string{"0002_bad.sql"}) {
		t.Errorf("pending after the failure = %v, %v", p, err)
	}

	fixed, _ := load(fstest.MapFS{
		"0001_ok.sql":  {Data: []byte("CREATE TABLE one (id int)")},
		"0002_bad.sql": {Data: []byte("CREATE TABLE two (id int)")},
	})
	if applied, err := apply(ctx, pool, fixed); err != nil || !slices.Equal(applied, []string{"0002_bad.sql"}) {
		t.Errorf("apply after the fix = %v, %v", applied, err)
	}
}
