package doccheck

import (
	"context"
	"fmt"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// TestQueriesOnClickHouse runs every dashboard and cookbook query on
// ClickHouse 18.16 with the fixture, and requires each to return rows.
func TestQueriesOnClickHouse(t *testing.T) {
	addr, db := testenv.ClickHouseDatabase(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	store, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := NewFixture()
	if err := f.Write(ctx, store); err != nil {
		t.Fatal(err)
	}
	results := map[string][][]any{}
	for _, q := range append(DashboardQueries(t, root), CookbookQueries(t, root)...) {
		res, err := RunQuery(ctx, store, Substitute(t, q, f))
		rows := res.Rows
		if err != nil {
			t.Errorf("%s fails on ClickHouse %s: %v\n%s", q.Name, store.ServerVersion(), err, q.SQL)
			continue
		}
		if len(rows) == 0 {
			t.Errorf("%s returns no rows on the fixture:\n%s", q.Name, q.SQL)
		}
		results[q.Name] = rows
	}

	// The figures people act on must be exact.
	total := decimal.New(f.TotalPicos, -12)
	if got := results[`aivis-cost.json panel "Total cost" #1`]; len(got) != 1 || !got[0][0].(decimal.Decimal).Equal(total) {
		t.Errorf("Total cost = %v, want %s", got, total)
	}
	share := float64(f.UnattributedPico) / float64(f.TotalPicos)
	if got := results[`aivis-cost.json panel "Unattributed share" #1`]; len(got) != 1 || fmt.Sprintf("%.4f", got[0][0]) != fmt.Sprintf("%.4f", share) {
		t.Errorf("Unattributed share = %v, want %.4f", got, share)
	}
	if got := results[`aivis-cost.json panel "Cost anomalies" #1`]; len(got) != 1 {
		t.Errorf("Cost anomalies = %v, want the fixture's one anomaly", got)
	}
	if got := results[`aivis-cost.json panel "GPU cost" #1`]; len(got) != 1 || !got[0][1].(decimal.Decimal).Equal(decimal.RequireFromString("3.6")) {
		t.Errorf("GPU cost = %v, want idle cost 3.6 (one idle H100 hour)", got)
	}
}
