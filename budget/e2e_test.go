package budget_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/budget"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

type alertLog struct {
	mu   sync.Mutex
	sent []schemas.Alert
}

func (a *alertLog) Publish(_ context.Context, alerts []schemas.Alert) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sent = append(a.sent, alerts...)
	return nil
}

const e2eBudgets = `timezone: UTC
budgets:
  - id: search-monthly
    scope: {team: search, model: gpt-4o}
    period: monthly
    amount_usd: "1000"
    soft: 80%
  - id: ads-monthly
    scope: {team: ads}
    period: monthly
    amount_usd: "1000"
  - id: ci-key-daily
    scope: {api_key: key-ci}
    period: daily
    amount_usd: "10"
  - id: route-daily
    scope: {label: route=/v1/x}
    period: daily
    amount_usd: "100"
`

// TestBudgetsEndToEnd writes windows and events through the sink, runs one
// evaluation, and checks budget_status, the alerts, the metrics and the
// report; a second evaluation, and a restarted evaluator, alert nothing
// again.
func TestBudgetsEndToEnd(t *testing.T) {
	addr, db := testenv.ClickHouseDatabase(t)
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	ctx := context.Background()
	store, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	now := time.Date(2025, 3, 20, 12, 0, 0, 0, time.UTC)
	monthStart := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	// $2 an hour for search/gpt-4o since March 1, and $9 in February that
	// belongs to the previous period.
	var rows []schemas.WindowRow
	row := func(at time.Time, team string, picos int64) schemas.WindowRow {
		return schemas.WindowRow{WindowStart: at, WindowSeconds: 60, Provider: "openai", Model: "gpt-4o", Team: team, Project: "p",
			ThroughOffset: at.Unix(), Requests: 1, CostPicos: schemas.PicosOf(picos), LatencyHist: make([]uint64, schemas.LatencyBuckets)}
	}
	rows = append(rows, row(monthStart.Add(-time.Hour), "search", 9_000_000_000_000))
	for at := monthStart; at.Before(now); at = at.Add(time.Hour) {
		rows = append(rows, row(at, "search", 2_000_000_000_000))
	}
	// Three events of the CI key today, $5 each, one on the route.
	var events []schemas.StoredEvent
	for i := range 3 {
		e := &schemas.Enriched{Event: *testenv.LLMEvent("openai", "gpt-4o", testenv.Usage(100, 0, 0, 10, 0))}
		e.EventID = fmt.Sprintf("01JBUDGET%017d", i)
		e.Time = now.Add(-time.Duration(i+1) * time.Hour)
		e.APIKeyID = "key-ci"
		if i == 0 {
			e.Labels = map[string]string{"route": "/v1/x", "other": "y"}
		}
		e.Owner = schemas.Owner{Team: "search", Project: "p"}
		e.CostPicos, e.CostSource = 5_000_000_000_000, "catalog"
		events = append(events, schemas.StoredEvent{Event: e, Offset: int64(i)})
	}
	if err := store.Write(ctx, events, rows); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "budgets.yaml")
	if err := os.WriteFile(path, []byte(e2eBudgets), 0o600); err != nil {
		t.Fatal(err)
	}
	bcfg := budget.DefaultConfig()
	bcfg.Path = path
	alerts := &alertLog{}
	reg := prometheus.NewRegistry()
	ev, err := budget.NewEvaluator(bcfg, store, alerts, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev.SetClock(func() time.Time { return now })
	if _, err := ev.EvaluateOnce(ctx); err != nil {
		t.Fatal(err)
	}

	got, err := budget.LatestStatus(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]schemas.BudgetStatus{}
	for _, s := range got {
		byID[s.BudgetID] = s
	}
	if len(byID) != 4 {
		t.Fatalf("got %d status rows, want 4: %+v", len(byID), got)
	}
	s := byID["search-monthly"]
	if s.SpentUSD.String() != "936" || s.State != schemas.BudgetSoft || !s.PeriodStart.Equal(monthStart) ||
		!s.PeriodEnd.Equal(monthStart.AddDate(0, 1, 0)) || s.Scope != "team=search,model=gpt-4o" || s.ForecastMethod != budget.MethodSeasonal {
		t.Fatalf("search-monthly: %+v", s)
	}
	// $64 left at $2 an hour: 32 hours.
	if want := now.Add(32 * time.Hour); !s.ExhaustsAt.Equal(want) {
		t.Fatalf("search-monthly exhausts at %s, want %s", s.ExhaustsAt, want)
	}
	if s.ForecastUSD.LessThan(decimal.NewFromInt(1487)) || s.ForecastUSD.GreaterThan(decimal.NewFromInt(1489)) ||
		s.ForecastLowUSD.GreaterThan(s.ForecastUSD) || s.ForecastHighUSD.LessThan(s.ForecastUSD) {
		t.Fatalf("search-monthly forecast %v [%v, %v], want about 1488", s.ForecastUSD, s.ForecastLowUSD, s.ForecastHighUSD)
	}
	// The forecast is an exact amount of whole picodollars.
	for _, f := range []decimal.Decimal{s.ForecastUSD, s.ForecastLowUSD, s.ForecastHighUSD} {
		if !f.Equal(f.Truncate(12)) {
			t.Fatalf("search-monthly forecast %s is not whole picodollars", f)
		}
	}
	if a := byID["ads-monthly"]; a.State != schemas.BudgetOK || !a.SpentUSD.IsZero() || !a.ExhaustsAt.IsZero() {
		t.Fatalf("ads-monthly: %+v", a)
	}
	if k := byID["ci-key-daily"]; k.SpentUSD.String() != "15" || k.State != schemas.BudgetHard {
		t.Fatalf("ci-key-daily: %+v", k)
	}
	if r := byID["route-daily"]; r.SpentUSD.String() != "5" || r.State != schemas.BudgetOK {
		t.Fatalf("route-daily: %+v", r)
	}

	var ids []string
	for _, a := range alerts.sent {
		ids = append(ids, a.AlertID)
		if a.Kind != schemas.AlertBudget {
			t.Errorf("alert kind %q", a.Kind)
		}
	}
	slices.Sort(ids)
	want := []string{
		fmt.Sprintf("budget:ci-key-daily:%d:hard", now.Truncate(24*time.Hour).Unix()),
		fmt.Sprintf("budget:search-monthly:%d:forecast", monthStart.Unix()),
		fmt.Sprintf("budget:search-monthly:%d:soft", monthStart.Unix()),
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("alerts %v, want %v", ids, want)
	}
	for _, a := range alerts.sent {
		if a.AlertID == want[2] && (a.Team != "search" || a.Model != "gpt-4o" || a.CostUSD != "936" || a.AmountUSD != "1000" || a.ExhaustsAt == nil) {
			t.Fatalf("soft alert: %+v", a)
		}
		if a.AlertID == want[1] && a.ForecastUSD != s.ForecastUSD.String() {
			t.Fatalf("forecast alert's forecast_usd %q, want the stored %s", a.ForecastUSD, s.ForecastUSD)
		}
	}
	if v := testutil.ToFloat64(budgetGauge(t, reg, "aivis_budget_used_ratio", "search-monthly")); v != 0.936 {
		t.Fatalf("used ratio %v, want 0.936", v)
	}

	// Again, and from a restarted evaluator: the status is rewritten, no
	// alert is raised twice.
	if _, err := ev.EvaluateOnce(ctx); err != nil {
		t.Fatal(err)
	}
	restarted, err := budget.NewEvaluator(bcfg, store, alerts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	restarted.SetClock(func() time.Time { return now.Add(time.Minute) })
	if _, err := restarted.EvaluateOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if len(alerts.sent) != 3 {
		t.Fatalf("%d alerts after re-evaluating, want still 3", len(alerts.sent))
	}

	// The reports show the newest evaluation, to the picodollar in JSON.
	latest, err := budget.LatestStatus(ctx, store)
	if err != nil || len(latest) != 4 {
		t.Fatalf("LatestStatus: %v %+v", err, latest)
	}
	forecast := latest[3].ForecastUSD

	var out bytes.Buffer
	if err := budget.Report(ctx, store, "table", &out); err != nil {
		t.Fatal(err)
	}
	table := out.String()
	for _, w := range []string{"search-monthly", "team=search,model=gpt-4o", "monthly 2025-03-01..2025-04-01", "1000.00", "936.00", "93.6%",
		"2025-03-21 20:00Z", forecast.StringFixed(2) + " (", "soft", "ci-key-daily", "150.0%", "hard", "label:route=/v1/x"} {
		if !strings.Contains(table, w) {
			t.Errorf("report table lacks %q:\n%s", w, table)
		}
	}
	out.Reset()
	if err := budget.Report(ctx, store, "json", &out); err != nil {
		t.Fatal(err)
	}
	var js struct {
		Budgets []struct {
			Budget      string  `json:"budget"`
			SpentUSD    string  `json:"spent_usd"`
			ForecastUSD string  `json:"forecast_usd"`
			UsedPercent float64 `json:"used_percent"`
			State       string  `json:"state"`
		} `json:"budgets"`
	}
	if err := json.Unmarshal(out.Bytes(), &js); err != nil {
		t.Fatalf("report JSON: %v\n%s", err, out.String())
	}
	if len(js.Budgets) != 4 || js.Budgets[3].Budget != "search-monthly" || js.Budgets[3].SpentUSD != "936" || js.Budgets[3].UsedPercent != 93.6 ||
		js.Budgets[3].ForecastUSD != forecast.String() {
		t.Fatalf("report JSON: %s", out.String())
	}
}

func budgetGauge(t *testing.T, reg *prometheus.Registry, name, id string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == id {
				g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name})
				g.Set(m.GetGauge().GetValue())
				return g
			}
		}
	}
	t.Fatalf("no %s{budget=%q}", name, id)
	return nil
}
