package aggregate_test

import (
	"context"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// TestSumsBeyondInt64InClickHouse writes, through the engine and the
// ClickHouse sink, one window whose cost passes int64 pico-USD and one
// whose token and latency sums pass int64. cost_by_window shows the first
// window's cost and tokens exactly, the second window's rows all survive
// ReplacingMergeTree and add up to the events exactly, and Reconcile finds
// no difference between events and windows.
func TestSumsBeyondInt64InClickHouse(t *testing.T) {
	addr, db := testenv.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := chsink.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	store, err := chsink.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	w0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	w1 := w0.Add(time.Minute)
	mk := func(id string, at time.Time, model string, tokens, latency, cost int64) *schemas.Enriched {
		return &schemas.Enriched{
			Event: schemas.Event{
				SchemaVersion: schemas.SchemaVersion, EventID: id, Time: at, Kind: schemas.KindLLMRequest, Source: "t",
				Provider: "anthropic", Model: model, Status: schemas.StatusOK, LatencyMs: &latency,
				Usage: &schemas.Usage{InputTokens: schemas.Int64(tokens), OutputTokens: schemas.Int64(tokens)},
			},
			Owner:      schemas.Owner{Team: "research", Project: "p", Rule: "default"},
			CostPicos:  cost,
			CostSource: schemas.CostSourceCatalog,
		}
	}
	var evs []*schemas.Enriched
	// Window 0: three events of 9e18 pico-USD (9 million USD, the most a
	// catalog price can reach is 2^63-1) and one small one.
	for i := 0; i < 3; i++ {
		evs = append(evs, mk(fmt.Sprintf("dear-%d", i), w0.Add(time.Duration(i)*time.Second), "opus", 1_000_000, 1000, 9_000_000_000_000_000_000))
	}
	evs = append(evs, mk("cheap", w0.Add(5*time.Second), "opus", 10, 100, 37_500))
	// Window 1: token counts and latencies of 2^62, beyond the per-event
	// bounds, as an event store could hold from before them.
	for i := 0; i < 5; i++ {
		evs = append(evs, mk(fmt.Sprintf("huge-%d", i), w1.Add(time.Duration(i)*time.Second), "opus", 1<<62, 1<<62, 1))
	}

	e := aggregate.NewEngine(aggregate.DefaultConfig())
	defer e.Close()
	e.Assign(0, schemas.PartitionHistory{}, w0)
	in := make([]aggregate.Input, len(evs))
	for i, x := range evs {
		in[i] = aggregate.Input{Offset: int64(i), Event: x}
	}
	e.AddBatch(0, in, w0, nil)
	f := e.Flush(w0, true)
	for i := 0; i < 2; i++ { // the second write is a replay
		if err := store.Write(ctx, f.Events, f.Rows); err != nil {
			t.Fatalf("Write #%d: %v", i+1, err)
		}
	}
	e.Ack(f)

	var cost decimal.Decimal
	var requests uint64
	var input, output int64
	if err := store.QueryRow(ctx, "SELECT sum(cost_usd), sum(requests), sum(input_tokens), sum(output_tokens) FROM "+chsink.ViewWindows+
		" WHERE window_start = toDateTime(?)", w0.Unix()).Scan(&cost, &requests, &input, &output); err != nil {
		t.Fatal(err)
	}
	if want := decimal.RequireFromString("27000000.000000037500"); !cost.Equal(want) || requests != 4 || input != 3_000_010 || output != 3_000_010 {
		t.Errorf("cost_by_window at %s: cost %s USD, %d requests, %d/%d tokens; want %s USD, 4 requests, 3000010 tokens each",
			w0.Format(time.RFC3339), cost, requests, input, output, want)
	}

	// Window 1's sums exceed any one Int64 column: its rows add up to them.
	rows, err := store.Query(ctx, "SELECT requests, input_tokens, output_tokens, latency_count, latency_sum_ms, cost_usd FROM "+chsink.TableWindows+
		" FINAL WHERE window_start = toDateTime(?) ORDER BY through_offset", w1.Unix())
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var req, latCount uint64
	tokIn, tokOut, latSum, picos := new(big.Int), new(big.Int), new(big.Int), decimal.Zero
	for rows.Next() {
		var r, lc uint64
		var a, b, ls int64
		var c decimal.Decimal
		if err := rows.Scan(&r, &a, &b, &lc, &ls, &c); err != nil {
			t.Fatal(err)
		}
		if a < 0 || b < 0 || ls < 0 {
			t.Errorf("row %d of window 1 has a negative sum: input %d output %d latency %d", n, a, b, ls)
		}
		n++
		req, latCount = req+r, latCount+lc
		tokIn.Add(tokIn, big.NewInt(a))
		tokOut.Add(tokOut, big.NewInt(b))
		latSum.Add(latSum, big.NewInt(ls))
		picos = picos.Add(c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	want := new(big.Int).Mul(big.NewInt(5), new(big.Int).Lsh(big.NewInt(1), 62))
	if n < 3 || req != 5 || latCount != 5 || tokIn.Cmp(want) != 0 || tokOut.Cmp(want) != 0 || latSum.Cmp(want) != 0 || !picos.Equal(decimal.New(5, -12)) {
		t.Errorf("window 1: %d rows, %d requests, tokens %s/%s, latency %d/%s, cost %s; want at least 3 rows summing to 5 requests, %s tokens and ms, 5e-12 USD",
			n, req, tokIn, tokOut, latCount, latSum, picos, want)
	}

	rec, err := store.Reconcile(ctx, w0.Truncate(24*time.Hour), w0.Truncate(24*time.Hour).Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Diffs) != 0 || rec.Events != uint64(len(evs)) {
		t.Errorf("Reconcile: %d events, differences:\n%v", rec.Events, rec.Diffs)
	}
	if want := decimal.RequireFromString("27000000.000000037505"); !rec.CostUSD.Equal(want) {
		t.Errorf("Reconcile cost %s USD, want %s", rec.CostUSD, want)
	}
}
