package clickhouse

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/shopspring/decimal"
)

// Reconciliation compares the stored events with the window aggregates.
type Reconciliation struct {
	Groups  int
	Events  uint64
	CostUSD decimal.Decimal
	Diffs   []Diff
}

// Diff is one (day, model, team) group whose events and windows disagree.
// Model and team are as stored, so whoever prints them to a terminal
// escapes them (report.Printable).
type Diff struct {
	Day, Model, Team string
	// Events and Windows are the group's sums in each table, as
	// "requests=… input=… … cost_usd=…".
	Events, Windows string
}

func (d Diff) String() string {
	return fmt.Sprintf("day=%s model=%s team=%s\n  events:  %s\n  windows: %s", d.Day, d.Model, d.Team, d.Events, d.Windows)
}

// recKey is a (day, model, team) group.
type recKey struct{ day, model, team string }

type recTotals struct {
	// requests sums what each event stands for (request_count); events
	// counts the events, for the summary only (windows have no such sum).
	requests, events                                uint64
	input, cacheRead, cacheWrite, output, reasoning int64
	cost                                            decimal.Decimal
}

func (t recTotals) String() string {
	return fmt.Sprintf("requests=%d input=%d cache_read=%d cache_write=%d output=%d reasoning=%d cost_usd=%s",
		t.requests, t.input, t.cacheRead, t.cacheWrite, t.output, t.reasoning, t.cost.String())
}

func (t recTotals) equal(o recTotals) bool {
	return t.requests == o.requests && t.input == o.input && t.cacheRead == o.cacheRead &&
		t.cacheWrite == o.cacheWrite && t.output == o.output && t.reasoning == o.reasoning && t.cost.Equal(o.cost)
}

// Reconcile sums requests, tokens and cost per (UTC day, model, team) from
// usage_events and from cost_windows, both deduplicated with FINAL, over
// [from, to), and lists every group where they differ. Windows still open
// in a running aggregator show up as differences: reconcile settled ranges.
func (s *Store) Reconcile(ctx context.Context, from, to time.Time) (*Reconciliation, error) {
	return s.reconcile(ctx, from, to, true)
}

// ReconcileUsage is Reconcile without the cost: it says whether every
// stored event is in a written window, whatever the prices.
func (s *Store) ReconcileUsage(ctx context.Context, from, to time.Time) (*Reconciliation, error) {
	return s.reconcile(ctx, from, to, false)
}

func (s *Store) reconcile(ctx context.Context, from, to time.Time, withCost bool) (*Reconciliation, error) {
	const sums = `sum(input_tokens), sum(cache_read_input_tokens), sum(cache_write_input_tokens), sum(output_tokens), sum(reasoning_output_tokens), sum(cost_usd)`
	// Windows are keyed by the canonical model, not the reported one.
	events, err := s.recQuery(ctx, `SELECT toString(toDate(time, 'UTC')) AS d, canonical_model, team, toUInt64(sum(request_count)), `+sums+`, toUInt64(count())
FROM `+TableEvents+` FINAL
WHERE time >= toDateTime(?) AND time < toDateTime(?)
GROUP BY d, canonical_model, team`, from, to)
	if err != nil {
		return nil, fmt.Errorf("summing usage_events: %w", err)
	}
	windows, err := s.recQuery(ctx, `SELECT toString(toDate(window_start, 'UTC')) AS d, model, team, toUInt64(sum(requests)), `+sums+`, toUInt64(0)
FROM `+TableWindows+` FINAL
WHERE window_start >= toDateTime(?) AND window_start < toDateTime(?)
GROUP BY d, model, team`, from, to)
	if err != nil {
		return nil, fmt.Errorf("summing cost_windows: %w", err)
	}
	keys := map[recKey]bool{}
	for k := range events {
		keys[k] = true
	}
	for k := range windows {
		keys[k] = true
	}
	sorted := make([]recKey, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.SortFunc(sorted, func(a, b recKey) int {
		return cmp.Or(cmp.Compare(a.day, b.day), cmp.Compare(a.model, b.model), cmp.Compare(a.team, b.team))
	})
	r := &Reconciliation{Groups: len(sorted), CostUSD: decimal.Zero}
	for _, k := range sorted {
		e, w := events[k], windows[k]
		r.Events += e.events
		r.CostUSD = r.CostUSD.Add(e.cost)
		if !withCost {
			e.cost, w.cost = decimal.Zero, decimal.Zero
		}
		if !e.equal(w) {
			r.Diffs = append(r.Diffs, Diff{Day: k.day, Model: k.model, Team: k.team, Events: e.String(), Windows: w.String()})
		}
	}
	return r, nil
}

func (s *Store) recQuery(ctx context.Context, q string, from, to time.Time) (map[recKey]recTotals, error) {
	rows, err := s.conn.Query(ctx, q, from.Unix(), to.Unix())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[recKey]recTotals{}
	for rows.Next() {
		var day, model, team string
		var t recTotals
		if err := rows.Scan(&day, &model, &team, &t.requests, &t.input, &t.cacheRead, &t.cacheWrite, &t.output, &t.reasoning, &t.cost, &t.events); err != nil {
			return nil, err
		}
		t.cost = zeroIfEmpty(t.cost)
		out[recKey{day, model, team}] = t
	}
	return out, rows.Err()
}

func zeroIfEmpty(d decimal.Decimal) decimal.Decimal {
	return d.Add(decimal.Zero)
}

// StoredEventIDs returns those of ids that usage_events holds on a day (UTC)
// from firstDay through lastDay. The ids travel as an external table, so a
// batch of any size is one query, on any server version. It reads the table
// without FINAL: FINAL collapses the versions of a row, it never removes an
// event id, so the ids are those of usage_events_final.
func (s *Store) StoredEventIDs(ctx context.Context, ids []string, firstDay, lastDay time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	tbl, err := ext.NewTable("aivis_verify_ids", ext.Column("event_id", "String"))
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := tbl.Append(id); err != nil {
			return nil, err
		}
	}
	rows, err := s.conn.Query(ch.Context(ctx, ch.WithExternalTable(tbl)),
		`SELECT DISTINCT event_id FROM `+TableEvents+`
WHERE date >= toDate(?) AND date <= toDate(?) AND event_id IN aivis_verify_ids`,
		firstDay.UTC().Format(time.DateOnly), lastDay.UTC().Format(time.DateOnly))
	if err != nil {
		return nil, fmt.Errorf("looking up event ids in %s: %w", TableEvents, err)
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		found = append(found, id)
	}
	return found, rows.Err()
}
