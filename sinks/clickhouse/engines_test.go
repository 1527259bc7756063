package clickhouse_test

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/budget"
	"github.com/aivis-dev/aivis/focus"
	"github.com/aivis-dev/aivis/governance"
	"github.com/aivis-dev/aivis/internal/chdbcheck"
	"github.com/aivis-dev/aivis/internal/doccheck"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/reconcile"
	"github.com/aivis-dev/aivis/report"
	"github.com/aivis-dev/aivis/rerate"
	"github.com/aivis-dev/aivis/savings"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// TestQueriesSameOnBothEngines writes doccheck's fixture (plus governance,
// auth-failure and savings rows) into ClickHouse 18.16 and into current
// ClickHouse (chDB through chdbcheck.Conn), each through the DDL for its
// version, runs the code behind every command that reads ClickHouse on
// both (the report's sections, the read API, verify's reconciliation,
// a re-rating dry run, the aggregator's history read-back, the anomaly
// scorer's and the budget evaluator's reads, governance and savings) and
// requires the same results from both.
func TestQueriesSameOnBothEngines(t *testing.T) {
	modern := chdbcheck.Open(t)
	ctx := context.Background()
	f := doccheck.NewFixture()
	from, to := f.Start(), f.End

	addr, db := testenv.ClickHouseDatabase(t)
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	old, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	for _, stmt := range []string{"CREATE DATABASE IF NOT EXISTS `aivis`", "USE aivis"} {
		if err := modern.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	engines := []struct {
		name  string
		store *clickhouse.Store
		q     report.Querier
	}{
		{"ClickHouse " + old.ServerVersion(), old, old},
		{"ClickHouse " + modernVersion + " (chDB)", clickhouse.NewStoreOn(modern, modernVersion), modern},
	}

	cat, err := pricing.Default()
	if err != nil {
		t.Fatal(err)
	}
	rules, err := savings.ParseRules([]byte(`tiers: {min_p50_latency_ms: 500}
equivalents: {models: [{from: openai/gpt-4o, to: [openai/gpt-4o-mini]}]}
gpu: {mig_profiles: {H100: [{profile: 3g.40gb, share: "0.5"}]}, comparables: {llama: openai/gpt-4o-mini}}
`))
	if err != nil {
		t.Fatal(err)
	}
	specs, err := budget.Parse([]byte("budgets:\n" +
		"  - {id: w, scope: {team: search, model: gpt-4o}, period: daily, amount_usd: \"1\"}\n" +
		"  - {id: e, scope: {provider: openai}, period: monthly, amount_usd: \"1\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte("default: {models: {deny: [\"gpt-4o-mini\"]}, regions: [\"us-*\"]}\n"+
		"data_classes: {pii: {regions: [\"eu-*\"]}}\nrequired_labels: [env]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	at := from.Add(3 * time.Hour)

	// Each read returns what the command built from it.
	type read struct {
		name string
		run  func(s *clickhouse.Store, q report.Querier) (any, error)
	}
	reads := []read{
		{"report", func(_ *clickhouse.Store, q report.Querier) (any, error) {
			return report.Build(ctx, q, report.Options{Since: 6 * time.Hour, Until: to, Limit: 10})
		}},
		{"read api: totals", func(_ *clickhouse.Store, q report.Querier) (any, error) {
			tot, last, err := report.TotalsIn(ctx, q, from, to)
			return []any{tot, last}, err
		}},
		{"read api: top users", func(_ *clickhouse.Store, q report.Querier) (any, error) { return report.TopUsers(ctx, q, from, to, 5) }},
		{"read api: days", func(_ *clickhouse.Store, q report.Querier) (any, error) { return report.Days(ctx, q, from, to) }},
		{"read api: series by project", func(_ *clickhouse.Store, q report.Querier) (any, error) {
			return report.Series(ctx, q, from, to, 1800, "project")
		}},
		{"export: FOCUS rows", func(_ *clickhouse.Store, q report.Querier) (any, error) {
			var rows []focus.Row
			err := focus.Rows(ctx, q, from, to, func(r focus.Row) error { rows = append(rows, r); return nil })
			return rows, err
		}},
		{"reconcile", func(_ *clickhouse.Store, q report.Querier) (any, error) { return reconcile.Load(ctx, q, from, to) }},
		{"verify: events against windows", func(s *clickhouse.Store, _ report.Querier) (any, error) { return s.Reconcile(ctx, from, to) }},
		{"verify: usage", func(s *clickhouse.Store, _ report.Querier) (any, error) { return s.ReconcileUsage(ctx, from, to) }},
		{"rerate dry run", func(s *clickhouse.Store, _ report.Querier) (any, error) {
			// After the GPU hour, whose events have no window rows.
			return rerate.Run(ctx, s, cat, from.Add(2*time.Hour), to, time.Minute, true)
		}},
		{"rerate corrections", func(s *clickhouse.Store, _ report.Querier) (any, error) {
			// What a re-rating would write for the stored events (version 0,
			// nothing re-rated yet): the corrections of every window in range.
			rows, err := s.CostCorrections(ctx, from, to, time.Minute, 0)
			// In no particular order.
			slices.SortFunc(rows, func(a, b schemas.WindowRow) int {
				return cmp.Or(a.WindowStart.Compare(b.WindowStart), cmp.Compare(a.Provider, b.Provider),
					cmp.Compare(a.Model, b.Model), cmp.Compare(a.Team, b.Team), cmp.Compare(a.Project, b.Project))
			})
			return rows, err
		}},
		{"catalog check and model drill-down", func(_ *clickhouse.Store, q report.Querier) (any, error) {
			var out [][]string
			for _, query := range []struct {
				sql  string
				args []any
			}{
				{clickhouse.TrafficModelsQuery, []any{schemas.KindLLMRequest, from.Unix()}},
				{clickhouse.ModelNamesQuery, []any{"gpt-4o", from.Unix(), to.Unix()}},
			} {
				res, err := doccheck.RunQuery(ctx, boundQuerier{q, query.args}, query.sql)
				if err != nil {
					return nil, err
				}
				out = append(out, strings.Split(res.TSV(), "\n"))
			}
			return out, nil
		}},
		{"aggregator history", func(s *clickhouse.Store, _ report.Querier) (any, error) {
			var out []schemas.PartitionHistory
			for p := int32(0); p <= 5; p++ {
				h, err := s.History(ctx, p, 1_000_000, from)
				if err != nil {
					return nil, err
				}
				out = append(out, h)
			}
			return out, nil
		}},
		{"anomaly scorer", func(s *clickhouse.Store, _ report.Querier) (any, error) {
			latest, err := s.LatestWindow(ctx)
			if err != nil {
				return nil, err
			}
			scored, err := s.LatestScored(ctx)
			if err != nil {
				return nil, err
			}
			marks, err := s.PublishedIncidents(ctx, from)
			if err != nil {
				return nil, err
			}
			costs, err := s.SeriesCosts(ctx, from, to)
			if err != nil {
				return nil, err
			}
			contributors, err := s.Contributors(ctx, "search", "gpt-4o", at, 5*time.Minute, 12)
			return []any{latest, scored, marks, costs, contributors}, err
		}},
		{"budgets", func(_ *clickhouse.Store, q report.Querier) (any, error) {
			var out []any
			for _, sp := range specs {
				spend, err := budget.ReadSpend(ctx, q, sp, from.Add(-24*time.Hour), from, to)
				if err != nil {
					return nil, err
				}
				out = append(out, spend)
			}
			status, err := budget.LatestStatus(ctx, q)
			return append(out, status), err
		}},
		{"savings", func(s *clickhouse.Store, _ report.Querier) (any, error) {
			return savings.Build(ctx, s, cat, rules, from, to)
		}},
		{"governance", func(s *clickhouse.Store, _ report.Querier) (any, error) {
			gcfg := governance.DefaultConfig()
			gcfg.Path = policy
			gov, err := governance.NewEvaluator(gcfg, s, nil, nil, nil, slog.New(slog.DiscardHandler))
			if err != nil {
				return nil, err
			}
			gov.SetClock(func() time.Time { return to })
			return gov.EvaluateOnce(ctx)
		}},
	}

	results := make([]map[string]string, len(engines))
	for i, e := range engines {
		if _, err := e.store.Migrate(ctx); err != nil {
			t.Fatalf("migrating %s: %v", e.name, err)
		}
		if err := f.Write(ctx, e.store); err != nil {
			t.Fatalf("writing the fixture to %s: %v", e.name, err)
		}
		if err := writeOperationalRows(ctx, e.store, at, from, to); err != nil {
			t.Fatalf("writing governance and savings rows to %s: %v", e.name, err)
		}
		results[i] = map[string]string{}
		for _, r := range reads {
			v, err := r.run(e.store, e.q)
			if err != nil {
				t.Fatalf("%s on %s: %v", r.name, e.name, err)
			}
			b, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			results[i][r.name] = string(b)
		}
	}
	for _, r := range reads {
		a, b := results[0][r.name], results[1][r.name]
		if a != b {
			at, ctxA, ctxB := firstDiff(a, b)
			t.Errorf("%s differs from line %d of its JSON:\n--- %s:\n%s\n--- %s:\n%s", r.name, at, engines[0].name, ctxA, engines[1].name, ctxB)
		}
		// A read that finds nothing compares nothing.
		if strings.Count(a, "\n") < 3 {
			t.Errorf("%s found next to nothing on the fixture: %s", r.name, a)
		}
	}
	for _, r := range reads {
		t.Logf("%s: %d lines of JSON", r.name, strings.Count(results[0][r.name], "\n")+1)
	}
	t.Logf("%d reads compared; chDB ran %d statements", len(reads), modern.Statements)
}

// boundQuerier passes args with every query (doccheck.RunQuery sends none).
type boundQuerier struct {
	q    report.Querier
	args []any
}

func (b boundQuerier) Query(ctx context.Context, query string, _ ...any) (driver.Rows, error) {
	return b.q.Query(ctx, query, b.args...)
}

// writeOperationalRows adds what the fixture lacks: a governance incident,
// auth failures and a stored savings recommendation.
func writeOperationalRows(ctx context.Context, s *clickhouse.Store, at, from, to time.Time) error {
	if err := s.WriteGovernanceSignals(ctx, []schemas.GovernanceSignal{{
		Signal: governance.SignalUnapproved, Category: schemas.CategoryGovernance, Subject: "search/openai/o1-preview",
		IncidentID: "unapproved_use:abc:1", Status: schemas.AlertFiring, WindowStart: at.Add(-15 * time.Minute), WindowEnd: at,
		Team: "search", Provider: "openai", Model: "o1-preview", CostUSD: decimal.RequireFromString("0.5"), Events: 2, Bytes: 100,
		Detail: "model o1-preview is denied for team search", DetectedAt: at}}); err != nil {
		return err
	}
	if err := s.WriteAuthFailures(ctx, []schemas.AuthFailureCount{{Minute: at.Truncate(time.Minute), SourceAddress: "10.0.0.9", Node: "n1", Failures: 30}}); err != nil {
		return err
	}
	return s.WriteSavings(ctx, []clickhouse.SavingsRow{{Day: to.Truncate(24 * time.Hour), ID: "abc", Kind: savings.KindIdleGPU, Team: "ml",
		Scope: `{"team":"ml"}`, Evidence: `{"detail":"x"}`, CurrentCostUSD: decimal.RequireFromString("3.6"),
		SavingUSD: decimal.RequireFromString("3.6"), MonthlySavingUSD: decimal.RequireFromString("36"), From: from, Until: to,
		Published: true, ComputedAt: at}})
}

// firstDiff returns the line number of the first difference of a and b
// and the lines around it in each.
func firstDiff(a, b string) (int, string, string) {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	i := 0
	for i < len(la) && i < len(lb) && la[i] == lb[i] {
		i++
	}
	around := func(l []string) string {
		return strings.Join(l[max(0, i-8):min(len(l), i+8)], "\n")
	}
	return i + 1, around(la), around(lb)
}
