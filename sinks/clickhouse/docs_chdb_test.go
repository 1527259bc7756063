package clickhouse_test

import (
	"context"
	"slices"
	"testing"

	"github.com/aivis-dev/aivis/internal/chdbcheck"
	"github.com/aivis-dev/aivis/internal/doccheck"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// TestDocsSQLSameOnModernClickHouse runs every Grafana panel, cookbook and
// README query and the queries `make demo` suggests on ClickHouse 18.16
// and on current ClickHouse (chDB), each on doccheck's fixture written
// through its own DDL, and requires the same rows from both.
func TestDocsSQLSameOnModernClickHouse(t *testing.T) {
	chdbcheck.Python(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f := doccheck.NewFixture()
	queries := slices.Concat(doccheck.DashboardQueries(t, root), doccheck.CookbookQueries(t, root), doccheck.READMEQueries(t, root), doccheck.DemoQueries(t, root))

	addr, db := testenv.ClickHouseDatabase(t)
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	old, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Write(ctx, old); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, q := range queries {
		res, err := doccheck.RunQuery(ctx, old, doccheck.Substitute(t, q, f))
		if err != nil {
			t.Fatalf("%s on ClickHouse %s: %v", q.Name, old.ServerVersion(), err)
		}
		want[q.Name] = res.TSV()
	}

	rec := &chdbcheck.Recorder{Name: "migrations"}
	rec.Add("CREATE DATABASE IF NOT EXISTS `aivis`")
	rec.Add("USE aivis")
	store := clickhouse.NewStoreOn(rec, modernVersion)
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rec.Name = "fixture"
	if err := f.Write(ctx, store); err != nil {
		t.Fatal(err)
	}
	for _, q := range queries {
		rec.Name = q.Name
		rec.Add(doccheck.Substitute(t, q, f))
		rec.Statements[len(rec.Statements)-1].Want = want[q.Name]
	}
	if rec.Err != nil {
		t.Fatal(rec.Err)
	}
	chdbcheck.Run(t, rec.Statements)
}
