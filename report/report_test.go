package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

var t0 = time.Date(2025, 3, 10, 10, 0, 0, 0, time.UTC)

// seed writes known windows and anomalies, twice (a replay must not count
// twice), and returns a Store on them.
func seed(t *testing.T) *clickhouse.Store {
	t.Helper()
	addr, db := testenv.ClickHouseDatabase(t)
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	ctx := context.Background()
	s, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	row := func(start time.Time, part int32, through int64, provider, model, team, project string, req, unpriced uint64, picos int64) schemas.WindowRow {
		h := make([]uint64, schemas.LatencyBuckets)
		h[27] = req - unpriced // latencies around 98.7 ms
		return schemas.WindowRow{WindowStart: start, WindowSeconds: 60, Provider: provider, Model: model, Team: team, Project: project,
			SrcPartition: part, ThroughOffset: through, Requests: req, UnpricedRequests: unpriced,
			InputTokens: int64(req) * 1000, OutputTokens: int64(req) * 100, CacheReadInputTokens: int64(req) * 10,
			CostPicos: schemas.PicosOf(picos), LatencyCount: req - unpriced, LatencySumMs: int64(req-unpriced) * 99, LatencyHist: h}
	}
	rows := []schemas.WindowRow{
		row(t0.Add(-time.Hour), 0, 1, "openai", "gpt-4o", "search", "ranker", 100, 0, 9_000_000_000_000), // out of range
		row(t0, 0, 10, "openai", "gpt-4o", "search", "ranker", 10, 0, 1_500_000),
		row(t0, 1, 5, "openai", "gpt-4o", "search", "ranker", 5, 0, 750_000),
		row(t0.Add(time.Minute), 0, 13, "anthropic", "claude-sonnet-4", "ads", "copy", 3, 0, 30_000_000_000),
		row(t0.Add(2*time.Minute), 1, 6, "openai", "gpt-4o", "ads", "copy", 1, 1, 0),
	}
	// Events of gpt-4o under two reported names, for the drill-down.
	var events []schemas.StoredEvent
	for i, name := range []string{"gpt-4o-2024-08-06", "GPT-4o", "gpt-4o-2024-08-06"} {
		events = append(events, schemas.StoredEvent{Offset: int64(i), Event: &schemas.Enriched{
			Event: schemas.Event{SchemaVersion: schemas.SchemaVersion, EventID: fmt.Sprintf("01JREPORT%017d", i), Time: t0.Add(time.Duration(i) * time.Second),
				Kind: schemas.KindLLMRequest, Source: "test", Provider: "openai", Model: name, Status: schemas.StatusOK},
			CanonicalModel: "gpt-4o", Owner: schemas.Owner{Team: "search", Project: "ranker"},
			CostPicos: 250_000, CostSource: schemas.CostSourceCatalog,
		}})
	}
	for range 2 {
		if err := s.Write(ctx, events, rows); err != nil {
			t.Fatal(err)
		}
	}

	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, Auth: ch.Auth{Database: db}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+clickhouse.TableAnomalies+
		" (window_start, team, model, cost_usd, baseline_usd, stddev_usd, z_score, observations, is_anomaly, ewma_mean_usd, ewma_var, scored_at)")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		start     time.Time
		team      string
		z         float64
		isAnomaly uint8
	}{{t0.Add(time.Minute), "ads", 12.5, 1}, {t0, "search", 0.4, 0}} {
		if err := batch.Append(a.start, a.team, "claude-sonnet-4", decimal.RequireFromString("0.03"), decimal.RequireFromString("0.001"), decimal.RequireFromString("0.002"), a.z,
			uint32(30), a.isAnomaly, decimal.RequireFromString("0.001"), 0.000004, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReport(t *testing.T) {
	s := seed(t)
	ctx := context.Background()
	opts := Options{Since: time.Hour, Until: t0.Add(time.Hour), Limit: 5}

	t.Run("json", func(t *testing.T) {
		var buf bytes.Buffer
		opts := opts
		opts.Format = FormatJSON
		if err := Report(ctx, s, opts, &buf); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), `"cost_usd": "0.03000225"`) {
			t.Errorf("JSON does not carry the exact total cost as a string:\n%s", buf.String())
		}
		var r Result
		if err := json.Unmarshal(buf.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		tot := r.Totals
		if tot.Requests != 19 || tot.UnpricedRequests != 1 || tot.InputTokens != 19_000 || tot.OutputTokens != 1_900 ||
			tot.CacheReadInputTokens != 190 || tot.CostUSD.String() != "0.03000225" {
			t.Errorf("totals = %+v", tot)
		}
		if !r.LatestWindow.Equal(t0.Add(2 * time.Minute)) {
			t.Errorf("latest window = %s", r.LatestWindow)
		}
		if len(r.Models) != 2 || r.Models[0].Model != "claude-sonnet-4" || r.Models[1].Model != "gpt-4o" ||
			r.Models[1].Requests != 16 || r.Models[1].CostUSD.String() != "0.00000225" {
			t.Fatalf("models = %+v", r.Models)
		}
		if m := r.Models[1]; m.LatencyP50Ms != 98.7 || m.LatencyP95Ms != 98.7 {
			t.Errorf("gpt-4o latency p50/p95 = %v/%v, want 98.7", m.LatencyP50Ms, m.LatencyP95Ms)
		}
		if len(r.Teams) != 2 || r.Teams[0].Team != "ads" || r.Teams[0].Requests != 4 || r.Teams[1].Team != "search" {
			t.Errorf("teams = %+v", r.Teams)
		}
		if len(r.Projects) != 2 || r.Projects[0].Project != "copy" || r.Projects[1].Project != "ranker" {
			t.Errorf("projects = %+v", r.Projects)
		}
		if n := r.ReportedNames; len(n) != 2 || n[0].Model != "gpt-4o" || n[0].ReportedName != "gpt-4o-2024-08-06" || n[0].Requests != 2 ||
			n[0].CostUSD.String() != "0.0000005" || n[1].ReportedName != "GPT-4o" || n[1].Model != "gpt-4o" {
			t.Errorf("reported names = %+v", n)
		}
		if len(r.Anomalies) != 1 || r.Anomalies[0].Team != "ads" || r.Anomalies[0].ZScore != 12.5 ||
			!r.Anomalies[0].WindowStart.Equal(t0.Add(time.Minute)) || r.Anomalies[0].CostUSD.String() != "0.03" {
			t.Errorf("anomalies = %+v", r.Anomalies)
		}
	})

	t.Run("csv", func(t *testing.T) {
		var buf bytes.Buffer
		opts := opts
		opts.Format = FormatCSV
		if err := Report(ctx, s, opts, &buf); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		sections := map[string]int{}
		for _, r := range recs[1:] {
			sections[r[0]]++
		}
		want := map[string]int{"totals": 1, "models": 2, "teams": 2, "projects": 2, "reported_names": 2, "anomalies": 1}
		for k, n := range want {
			if sections[k] != n {
				t.Errorf("CSV has %d %s rows, want %d (all: %v)", sections[k], k, n, sections)
			}
		}
		col := map[string]int{}
		for i, name := range recs[0] {
			col[name] = i
		}
		if got := recs[1][col["cost_usd"]]; got != "0.03000225" {
			t.Errorf("CSV total cost = %q", got)
		}
		if got := recs[2][col["model"]]; got != "claude-sonnet-4" {
			t.Errorf("CSV first model = %q", got)
		}
		// The anomalies are the last cost section; the governance
		// sections follow them.
		var last []string
		for _, r := range recs {
			if r[0] == "anomalies" {
				last = r
			}
		}
		if last == nil || last[col["window_start"]] != "2025-03-10T10:01:00Z" || last[col["z_score"]] != "12.5" {
			t.Errorf("CSV anomaly row = %v", last)
		}
	})

	t.Run("table", func(t *testing.T) {
		var buf bytes.Buffer
		if err := Report(ctx, s, opts, &buf); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, want := range []string{
			"windows starting 2025-03-10 10:00 UTC to 2025-03-10 11:00 UTC (latest window 2025-03-10 10:02 UTC)",
			"requests           19",
			"cost USD           0.030002",
			"input tokens       19,000",
			"anthropic  claude-sonnet-4",
			"98.7",
			"ads     copy     4",
			"2025-03-10 10:01 UTC  ads   claude-sonnet-4  0.030000  0.001000      12.50",
			"COST BY REPORTED NAME",
			"openai    gpt-4o  gpt-4o-2024-08-06  2         0.000001",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("table lacks %q:\n%s", want, out)
			}
		}
		if strings.Index(out, "claude-sonnet-4") > strings.Index(out, "gpt-4o") {
			t.Errorf("models not ordered by cost:\n%s", out)
		}
		t.Logf("\n%s", out)
	})

	t.Run("empty range", func(t *testing.T) {
		var buf bytes.Buffer
		if err := Report(ctx, s, Options{Since: time.Hour, Until: t0.Add(-2 * time.Hour)}, &buf); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), "(none)") || !strings.Contains(buf.String(), "0.000000") {
			t.Errorf("empty report:\n%s", buf.String())
		}
	})
}

func TestOptionsValidate(t *testing.T) {
	err := Options{Since: -time.Hour, Limit: -1, Format: "xml"}.Validate()
	for _, key := range []string{"since", "limit", "format"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() = %v, want a problem with %s", err, key)
		}
	}
}

func TestNum(t *testing.T) {
	for v, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", -1234567: "-1,234,567"} {
		if got := num(v); got != want {
			t.Errorf("num(%d) = %q, want %q", v, got, want)
		}
	}
}
