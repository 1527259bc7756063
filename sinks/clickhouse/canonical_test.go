package clickhouse

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// TestCanonicalModelGroupsWindowsAndKeepsReportedNames: events of one
// model under three reported names are one cost_by_window row (the
// windows are keyed by the canonical model), usage_events keeps each
// name for drill-down, and verify matches events with windows per
// canonical model, also for an event stored without canonical_model.
func TestCanonicalModelGroupsWindowsAndKeepsReportedNames(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	events := testEvents(4)
	for i, name := range []string{"gpt-4o", "gpt-4o-2024-08-06", "GPT-4o", "gpt-4o-2024-11-20"} {
		e := *events[i].Event
		e.Time = base
		e.Model = name
		if i < 3 {
			e.CanonicalModel = "gpt-4o"
		}
		e.CostPicos = int64(i+1) * 1_000_000
		events[i].Event = &e
	}
	row := func(model string, through int64, req uint64, picos int64) schemas.WindowRow {
		return schemas.WindowRow{WindowStart: base, WindowSeconds: 60, Provider: "openai", Model: model, Team: "search", Project: "ranker",
			ThroughOffset: through, Requests: req, InputTokens: int64(req) * 1000, OutputTokens: int64(req) * 200,
			CostPicos: schemas.PicosOf(picos), LatencyHist: make([]uint64, schemas.LatencyBuckets)}
	}
	// As the aggregator writes them: one row for the canonical model, and
	// the event without canonical_model under its reported name.
	rows := []schemas.WindowRow{row("gpt-4o", 2, 3, 6_000_000), row("gpt-4o-2024-11-20", 3, 1, 4_000_000)}
	for range 2 { // a replay collapses onto the same rows
		if err := s.Write(ctx, events, rows); err != nil {
			t.Fatal(err)
		}
	}

	got := map[string]uint64{}
	r, err := s.conn.Query(ctx, "SELECT model, requests FROM "+ViewWindows)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var m string
		var n uint64
		if err := r.Scan(&m, &n); err != nil {
			t.Fatal(err)
		}
		got[m] += n
	}
	if len(got) != 2 || got["gpt-4o"] != 3 || got["gpt-4o-2024-11-20"] != 1 {
		t.Errorf("cost_by_window rows = %v, want gpt-4o with 3 requests and the old event's own row", got)
	}

	names := map[string]decimal.Decimal{}
	r, err = s.conn.Query(ctx, ModelNamesQuery, "gpt-4o", base.Unix(), base.Add(time.Minute).Unix())
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var provider, model string
		var n uint64
		var usd decimal.Decimal
		if err := r.Scan(&provider, &model, &n, &usd); err != nil {
			t.Fatal(err)
		}
		if n != 1 || provider != "openai" {
			t.Errorf("%s %s: %d requests, want 1", provider, model, n)
		}
		names[model] = usd
	}
	if len(names) != 3 || names["GPT-4o"].String() != "0.000003" || names["gpt-4o"].String() != "0.000001" {
		t.Errorf("drill-down of gpt-4o = %v, want its three reported names", names)
	}

	var stored string
	if err := s.conn.QueryRow(ctx, "SELECT canonical_model FROM "+ViewEvents+" WHERE model = 'gpt-4o-2024-11-20'").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != "gpt-4o-2024-11-20" {
		t.Errorf("an event without canonical_model stores %q, want its reported name", stored)
	}
	rec, err := s.Reconcile(ctx, base, base.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Diffs) > 0 {
		t.Errorf("events and windows disagree: %v", rec.Diffs)
	}
}
