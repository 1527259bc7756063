package clickhouse_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/budget"
	"github.com/aivis-dev/aivis/focus"
	"github.com/aivis-dev/aivis/governance"
	"github.com/aivis-dev/aivis/internal/chdbcheck"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/reconcile"
	"github.com/aivis-dev/aivis/report"
	"github.com/aivis-dev/aivis/savings"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
	"github.com/shopspring/decimal"
)

// modernVersion is what a current server answers to SELECT version(); the
// DDL for it uses LowCardinality, CODEC and TTL.
const modernVersion = "26.9.2.1"

// TestModernClickHouseSQL runs every statement aivis sends to ClickHouse on
// current ClickHouse (chDB): the migrations for a modern server, the
// inserts of the sink and the anomaly scorer with representative rows, and
// the queries of the aggregator's read-back, verify, re-rating, the anomaly
// scorer, the report (confidence included), reconcile and catalog check.
// The other tests run on ClickHouse 18.16, which has none of the modern DDL.
// The statements are recorded through the real code paths with a Recorder
// in place of the connection, so a query edited in the code is checked here
// without editing this test.
func TestModernClickHouseSQL(t *testing.T) {
	chdbcheck.Python(t) // skip before recording when chDB is missing
	ctx := context.Background()
	rec := &chdbcheck.Recorder{}
	step := func(name string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("recording %s: %v", name, err)
		}
	}

	// The portable DDL, which 18.16 runs, must run on a current server too.
	rec.Name = "portable migrations"
	rec.Add("CREATE DATABASE IF NOT EXISTS `aivis_portable`")
	rec.Add("USE aivis_portable")
	_, err := clickhouse.NewStoreOn(rec, "18.16.1").Migrate(ctx)
	step(rec.Name, err)

	rec.Name = "modern migrations"
	rec.Add("CREATE DATABASE IF NOT EXISTS `aivis`")
	rec.Add("USE aivis")
	store := clickhouse.NewStoreOn(rec, modernVersion)
	_, err = store.Migrate(ctx)
	step(rec.Name, err)

	// The materialized view of migration 85 fills the key sightings on a
	// current server too (in the portable database, apart from the rows
	// the checks below count).
	rec.Name = "key sightings"
	rec.Add(`INSERT INTO aivis_portable.usage_events (event_id, time, date, kind, api_key_id, source, provider_region) VALUES
    ('e1', toDateTime('2026-01-02 10:00:00', 'UTC'), '2026-01-02', 'llm.request', 'k1', 'gw-1', 'us-east-1'),
    ('e2', toDateTime('2026-01-02 11:30:00', 'UTC'), '2026-01-02', 'llm.request', 'k1', 'gw-1', 'us-east-1'),
    ('e3', toDateTime('2026-01-03 09:00:00', 'UTC'), '2026-01-03', 'llm.request', 'k1', 'gw-2', 'us-east-1'),
    ('e4', toDateTime('2026-01-03 09:00:00', 'UTC'), '2026-01-03', 'llm.request', '', 'gw-2', 'us-east-1')`)
	rec.Add(`SELECT toString(date), api_key_id, source, provider_region,
    toString(minMerge(first_seen), 'UTC'), toString(maxMerge(last_seen), 'UTC')
FROM aivis_portable.` + clickhouse.TableKeySightings + `
GROUP BY date, api_key_id, source, provider_region`)

	// The cluster DDL needs ZooKeeper and a cluster, which chDB has not:
	// a current server must parse it, with the modern types.
	rec.Name = "cluster migrations (parsed)"
	layout := clickhouse.ClusterLayout{Cluster: "aivis_cluster", Database: "aivis_c"}
	modern, err := clickhouse.Migrations(clickhouse.CapabilitiesFor(modernVersion))
	step(rec.Name, err)
	onCluster, err := clickhouse.OnCluster(modern, layout)
	step(rec.Name, err)
	rec.Add("EXPLAIN AST " + layout.MigrationsTableDDL())
	for _, m := range onCluster {
		for _, stmt := range m.Statements {
			rec.Add("EXPLAIN AST " + stmt)
		}
	}

	// Yesterday noon: the modern DDL's TTL drops events older than 400
	// days as they are inserted, so the fixed test time would leave
	// usage_events empty.
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	at := day.Add(12 * time.Hour)
	from, to := day, day.Add(24*time.Hour)
	events, windows := chdbRows(at)
	rec.Name = "sink write"
	step(rec.Name, store.Write(ctx, events, windows))

	rec.Name = "gpu write"
	joules := 1_800_000.0
	step(rec.Name, store.Write(ctx, []schemas.StoredEvent{{Offset: 99, Event: &schemas.Enriched{
		Event: schemas.Event{SchemaVersion: schemas.SchemaVersion, EventID: "01JCHDBGPU", Time: at.Add(-30 * time.Hour), Kind: schemas.KindGPUUsage, Source: "probe",
			Labels: map[string]string{"deployment": "llama"},
			GPU: &schemas.GPUUsage{GPUModel: "H100", Host: "gpu-1", IntervalSeconds: 60, AllocatedSeconds: 3600, BusySeconds: 1800,
				EnergyJoules: &joules, OwnerKind: "idle", OwnerID: "idle"}},
		Owner: schemas.Owner{Team: "ml"}, CostPicos: 3_600_000_000_000, CostSource: schemas.CostSourceCatalog}}}, nil))
	step(rec.Name, store.WriteGPUSettings(ctx, 0.1, 400))

	rec.Name = "anomaly scores write"
	scores := []schemas.Score{
		{SeriesCost: schemas.SeriesCost{WindowStart: at, Team: "search", Model: "gpt-4o", CostPicos: schemas.PicosOf(2_500_000_000_000)},
			BaselinePicos: schemas.PicosOf(1e12), StddevPicos: schemas.PicosOf(2e11), Z: 7.5, Observations: 12, Anomaly: true, EWMAMeanPicos: schemas.PicosOf(1e12), EWMAVar: 4e22,
			IncidentID: "search/gpt-4o:1", IncidentStatus: schemas.AlertFiring},
		{SeriesCost: schemas.SeriesCost{WindowStart: at.Add(-time.Hour), Team: "search", Model: "gpt-4o", CostPicos: schemas.PicosOf(1_000_000_000_000)},
			BaselinePicos: schemas.PicosOf(1e12), Observations: 11, EWMAMeanPicos: schemas.PicosOf(1e12), EWMAVar: 4e22},
	}
	step(rec.Name, store.WriteScores(ctx, scores))

	rec.Name = "aggregator read-back"
	_, err = store.History(ctx, 0, 100, from)
	step(rec.Name, err)
	// As for verify, chDB has no external tables: the test creates it.
	rec.Add("CREATE TABLE aivis_dedup_ids (event_id String) ENGINE = Memory")
	rec.Add("INSERT INTO aivis_dedup_ids VALUES ('01JCHDB0000000000000000001'), ('01JCHDBMISSING')")
	_, err = store.StoredIDs(ctx, 0, []string{"01JCHDB0000000000000000001", "01JCHDBMISSING"}, from, to)
	step(rec.Name, err)

	rec.Name = "anomaly scorer reads"
	_, err = store.LatestWindow(ctx)
	step(rec.Name, err)
	_, err = store.LatestScored(ctx)
	step(rec.Name, err)
	_, err = store.PublishedIncidents(ctx, from)
	step(rec.Name, err)
	_, err = store.Contributors(ctx, "search", "gpt-4o", at.Truncate(time.Minute), time.Minute, 60)
	step(rec.Name, err)
	_, err = store.SeriesCosts(ctx, from, to)
	step(rec.Name, err)

	rec.Name = "verify"
	// The driver sends the ids as an external table; chDB has none, so
	// the test creates it as the server would see it.
	rec.Add("CREATE TABLE aivis_verify_ids (event_id String) ENGINE = Memory")
	rec.Add("INSERT INTO aivis_verify_ids VALUES ('01JCHDB0000000000000000001'), ('01JCHDBMISSING')")
	_, err = store.StoredEventIDs(ctx, []string{"01JCHDB0000000000000000001", "01JCHDBMISSING"}, day, day)
	step(rec.Name, err)
	_, err = store.Reconcile(ctx, from, to)
	step(rec.Name, err)
	_, err = store.ReconcileUsage(ctx, from, to)
	step(rec.Name, err)

	rec.Name = "rerate"
	_, err = store.RatedEvents(ctx, from, to)
	step(rec.Name, err)
	_, err = store.MaxRatingVersion(ctx)
	step(rec.Name, err)
	_, err = store.CostCorrections(ctx, from, to, time.Minute, 2)
	step(rec.Name, err)

	rec.Name = "governance write"
	step(rec.Name, store.WriteGovernanceSignals(ctx, []schemas.GovernanceSignal{{
		Signal: governance.SignalUnapproved, Category: schemas.CategoryGovernance, Subject: "search/openai/o1-preview",
		IncidentID: "unapproved_use:abc:1", Status: schemas.AlertFiring, WindowStart: at.Add(-15 * time.Minute), WindowEnd: at,
		Team: "search", Provider: "openai", Model: "o1-preview", CostUSD: decimal.RequireFromString("0.5"), Events: 2, Bytes: 100,
		Detail: "model o1-preview is denied for team search", DetectedAt: at}}))
	step(rec.Name, store.WriteAuthFailures(ctx, []schemas.AuthFailureCount{{Minute: at.Truncate(time.Minute), SourceAddress: "10.0.0.9", Node: "n1", Failures: 30}}))

	rec.Name = "report"
	_, err = report.Build(ctx, rec, report.Options{Since: 48 * time.Hour, Until: to, Limit: 5})
	step(rec.Name, err)

	rec.Name = "read api"
	_, _, err = report.TotalsIn(ctx, rec, from, to)
	step(rec.Name, err)
	_, err = report.TopUsers(ctx, rec, from, to, 5)
	step(rec.Name, err)
	_, err = report.Days(ctx, rec, from, to)
	step(rec.Name, err)
	_, err = report.Series(ctx, rec, from, to, 300, "project")
	step(rec.Name, err)
	step(rec.Name, focus.Rows(ctx, rec, from, to, func(focus.Row) error { return nil }))

	rec.Name = "reconcile"
	_, err = reconcile.Load(ctx, rec, from, to)
	step(rec.Name, err)

	rec.Name = "catalog check"
	_, err = rec.Query(ctx, clickhouse.TrafficModelsQuery, schemas.KindLLMRequest, from.Unix())
	step(rec.Name, err)

	rec.Name = "model drill-down"
	_, err = rec.Query(ctx, clickhouse.ModelNamesQuery, "gpt-4o", from.Unix(), to.Unix())
	step(rec.Name, err)

	rec.Name = "budgets"
	specs, err := budget.Parse([]byte("budgets:\n" +
		"  - {id: w, scope: {team: search, model: gpt-4o}, period: daily, amount_usd: \"1\"}\n" +
		"  - {id: e, scope: {label: route=/v1/chat, provider: openai}, period: daily, amount_usd: \"1\"}\n"))
	step(rec.Name, err)
	for _, sp := range specs {
		_, err = budget.ReadSpend(ctx, rec, sp, from.Add(-7*24*time.Hour), from, to)
		step(rec.Name, err)
	}
	step(rec.Name, store.WriteBudgetStatus(ctx, []schemas.BudgetStatus{{
		BudgetID: "w", Scope: "team=search,model=gpt-4o", Period: "daily", Timezone: "UTC", PeriodStart: from, PeriodEnd: to,
		AmountUSD: decimal.NewFromInt(1), HardUSD: decimal.NewFromInt(1), SpentUSD: decimal.RequireFromString("0.0024"),
		ForecastUSD: decimal.RequireFromString("0.5"), ForecastLowUSD: decimal.RequireFromString("0.4"), ForecastHighUSD: decimal.RequireFromString("0.6"), ForecastMethod: "linear", ExhaustsAt: at.Add(time.Hour),
		State: "at_risk", Alerted: []string{"forecast"}, EvaluatedAt: at}}))
	_, err = budget.LatestStatus(ctx, rec)
	step(rec.Name, err)

	// The evaluator's queries, last: it writes what the recorder's empty
	// rows make it find.
	rec.Name = "governance"
	gcfg := governance.DefaultConfig()
	// Any spend is heavy, so that the recorder's empty rows make the
	// dormant check read the key sightings too.
	gcfg.DormantWakeUSD = "0"
	// A policy with every kind of rule, so that every query runs.
	gcfg.Path = filepath.Join(t.TempDir(), "policy.yaml")
	step(rec.Name, os.WriteFile(gcfg.Path, []byte("default: {models: {deny: [\"*-preview\"]}, regions: [\"us-*\"]}\n"+
		"data_classes: {pii: {regions: [\"eu-*\"]}}\nrequired_labels: [env]\n"), 0o600))
	gov, err := governance.NewEvaluator(gcfg, store, nil, nil, nil, nil)
	step(rec.Name, err)
	gov.SetClock(func() time.Time { return at.Add(time.Minute) })
	_, err = gov.EvaluateOnce(ctx)
	step(rec.Name, err)
	rec.Name = "savings"
	rules, err := savings.ParseRules([]byte(`tiers: {min_p50_latency_ms: 500}
equivalents: {models: [{from: openai/gpt-4o, to: [openai/gpt-4o-mini]}]}
provisioned: [{name: p, provider: openai, model: gpt-4o, unit_usd_per_hour: "1", unit_tokens_per_hour: 1000}]
gpu: {mig_profiles: {H100: [{profile: 3g.40gb, share: "0.5"}]}, comparables: {llama: openai/gpt-4o-mini}}
`))
	step(rec.Name, err)
	cat, err := pricing.Default()
	step(rec.Name, err)
	_, err = savings.Build(ctx, store, cat, rules, from.Add(-48*time.Hour), to)
	step(rec.Name, err)
	cfg := savings.DefaultConfig()
	cfg.Lookback = 72 * time.Hour
	recommender, err := savings.NewRecommender(cfg, cat, store, nil, nil, slog.New(slog.DiscardHandler))
	step(rec.Name, err)
	recommender.SetClock(func() time.Time { return to.Add(time.Hour) })
	_, err = recommender.RunOnce(ctx)
	step(rec.Name, err)
	step(rec.Name, store.WriteSavings(ctx, []clickhouse.SavingsRow{{Day: to, ID: "abc", Kind: savings.KindIdleGPU, Team: "ml",
		Scope: `{"team":"ml"}`, Evidence: `{"detail":"x"}`, CurrentCostUSD: decimal.RequireFromString("3.6"),
		SavingUSD: decimal.RequireFromString("3.6"), MonthlySavingUSD: decimal.RequireFromString("36"), From: from, Until: to,
		Published: true, ComputedAt: at}}))

	// The results that say the modern engine reads the data as 18.16
	// does: events and windows agree, FINAL keeps the newest rating, and
	// the confidence section splits exact, fallback and unpriced cost.
	d := day.Format(time.DateOnly)
	want := func(group, contains string, lines ...string) {
		t.Helper()
		if rec.Want(group, contains, lines...) == 0 {
			t.Fatalf("no %s statement contains %q", group, contains)
		}
	}
	want("key sightings", "minMerge(first_seen)", "2026-01-02\tk1\tgw-1\tus-east-1\t2026-01-02 10:00:00\t2026-01-02 11:30:00",
		"2026-01-03\tk1\tgw-2\tus-east-1\t2026-01-03 09:00:00\t2026-01-03 09:00:00")
	want("anomaly scorer reads", "ARRAY JOIN", "api_key_id\t\t0.0024\t0\t2400\t400\t0\t0",
		"project\tranker\t0.0024\t0\t2400\t400\t0\t0", "reported_model\tgpt-4o\t0.0024\t0\t2400\t400\t0\t0",
		"series\t\t0.0024\t0\t2400\t400\t0\t0")
	want("verify", "FROM usage_events FINAL", d+"\tgpt-4o\tsearch\t2\t2400\t400\t200\t600\t100\t0.0024\t2",
		d+"\tclaude-new\tsearch\t1\t1200\t200\t100\t300\t50\t0\t1")
	want("verify", "FROM cost_windows FINAL", d+"\tgpt-4o\tsearch\t2\t2400\t400\t200\t600\t100\t0.0024\t0",
		d+"\tclaude-new\tsearch\t1\t1200\t200\t100\t300\t50\t0\t0")
	want("verify", "IN aivis_verify_ids", "01JCHDB0000000000000000001")
	want("report", "pricing_warnings", "openai\tgpt-4o\t0.0015\t1\t0.0009\t1\t['snapshot_fallback']\t0",
		"anthropic\tclaude-new\t0\t0\t0\t0\t[]\t1") // the gpu.usage event is not a model's
	want("catalog check", "count()", fmt.Sprintf("openai\tgpt-4o\t2\t%d", at.Unix()),
		fmt.Sprintf("anthropic\tclaude-new\t1\t%d", at.Unix()))

	want("budgets", "FROM cost_by_window", fmt.Sprintf("%d\t0.0024\t0.0024", at.Unix()/3600))
	want("budgets", "FROM usage_events FINAL", fmt.Sprintf("%d\t0.0024\t0.0024", at.Unix()/3600))
	want("budgets", "FROM budget_status_final", fmt.Sprintf("w\t\tteam=search,model=gpt-4o\tdaily\tUTC\t%d\t%d\t1\t0\t1\t0.0024\t0.5\t0.4\t0.6\tlinear\t%d\tat_risk\t['forecast']\t%d",
		from.Unix(), to.Unix(), at.Add(time.Hour).Unix(), at.Unix()))

	want("read api", "toDateTime(intDiv(toUInt32(window_start), 300) * 300)",
		at.Truncate(5*time.Minute).UTC().Format(time.DateTime)+"\tsearch/ranker\t3\t0.0024")
	want("read api", "toString(toDate(window_start))", d+"\t3\t0\t1\t3600\t900\t600\t300\t0.0024")
	want("read api", "ORDER BY window_start, provider, model, team, project",
		at.Truncate(time.Minute).UTC().Format(time.DateTime)+"\t60\tanthropic\tclaude-new\tsearch\tranker\t1\t1500\t0",
		at.Truncate(time.Minute).UTC().Format(time.DateTime)+"\t60\topenai\tgpt-4o\tsearch\tranker\t2\t3000\t0.0024")
	want("report", "FROM gpu_cost_by_window", "ml\t3600\t1800\t1800\t0.5\t0.05\t200\t3.6\t3.6\t0.5")
	want("report", "FROM self_hosted_cost_by_day", "llama\t3.6\t0\t0\t0")
	want("report", "FROM governance_incidents", fmt.Sprintf("governance\tunapproved_use\tsearch/openai/o1-preview\tfiring\t%s\t2\t0.5\tmodel o1-preview is denied for team search", at.Format(time.DateTime)))
	want("report", "FROM data_movement_by_hour", "openai\t\tsearch\t2\t0\t0\t0\t0.0024", "anthropic\t\tsearch\t1\t0\t0\t0\t0")
	want("report", "FROM auth_failures_by_hour", "10.0.0.9\t30\t30")
	want("savings", "GROUP BY team, host, gpu_model", "ml\tgpu-1\tH100\t\tidle\tidle\t3600\t1800\t3.6")
	want("savings", "AS labelled", "search\tranker\t\topenai\tgpt-4o\t\t0\t1200\t200\t100\t300\t50\t2")

	if rec.Err != nil {
		t.Fatalf("recording the statements: %v", rec.Err)
	}
	chdbcheck.Run(t, rec.Statements)
}

// chdbRows returns events and window rows that touch every column: two
// ratings of one event, a fallback-priced and an unpriced event, labels and
// raw usage with quotes, and a re-rating correction row.
func chdbRows(at time.Time) ([]schemas.StoredEvent, []schemas.WindowRow) {
	event := func(id, provider, model string, costPicos int64, warnings ...string) *schemas.Enriched {
		e := &schemas.Enriched{Event: *testenv.LLMEvent(provider, model, testenv.Usage(1200, 200, 100, 300, 50))}
		e.EventID, e.Time = id, at
		e.Warnings = warnings
		latency := int64(850)
		e.LatencyMs = &latency
		e.Labels = map[string]string{"route": "/v1/chat", "note": `it's "quoted"`}
		e.RawUsage = []byte(`{"prompt_tokens":1200,"completion_tokens":300}`)
		e.Owner = schemas.Owner{Team: "search", Project: "ranker", CostCenter: "cc-1"}
		e.Pricing = schemas.Pricing{CatalogVersion: "2025-09-01", PriceID: provider + "/" + model}
		e.CostPicos, e.CostSource = costPicos, "catalog"
		return e
	}
	exact := event("01JCHDB0000000000000000001", "openai", "gpt-4o", 1_250_000_000)
	rerated := event("01JCHDB0000000000000000001", "openai", "gpt-4o", 1_500_000_000)
	fallback := event("01JCHDB0000000000000000002", "openai", "gpt-4o", 900_000_000,
		"snapshot_fallback: priced as gpt-4o", "adapter_note: not a pricing warning")
	unpriced := event("01JCHDB0000000000000000003", "anthropic", "claude-new", 0)
	unpriced.Flags.Unpriced = true
	unpriced.ProviderCostUSD = "0.0042"
	events := []schemas.StoredEvent{
		{Event: exact, Partition: 0, Offset: 10},
		{Event: fallback, Partition: 0, Offset: 11},
		{Event: unpriced, Partition: 1, Offset: 7},
		{Event: rerated, Partition: 0, Offset: 10, RatingVersion: 1},
	}
	hist := make([]uint64, schemas.LatencyBuckets)
	hist[39] = 2
	start := at.Truncate(time.Minute)
	windows := []schemas.WindowRow{
		{WindowStart: start, WindowSeconds: 60, Provider: "openai", Model: "gpt-4o", Team: "search", Project: "ranker",
			SrcPartition: 0, ThroughOffset: 11, Requests: 2, InputTokens: 2400, CacheReadInputTokens: 400,
			CacheWriteInputTokens: 200, OutputTokens: 600, ReasoningOutputTokens: 100,
			CostPicos: schemas.PicosOf(2_150_000_000), LatencyCount: 2, LatencySumMs: 1700, LatencyHist: hist},
		{WindowStart: start, WindowSeconds: 60, Provider: "anthropic", Model: "claude-new", Team: "search", Project: "ranker",
			SrcPartition: 1, ThroughOffset: 7, Requests: 1, UnpricedRequests: 1, InputTokens: 1200, CacheReadInputTokens: 200,
			CacheWriteInputTokens: 100, OutputTokens: 300, ReasoningOutputTokens: 50,
			LatencyHist: make([]uint64, schemas.LatencyBuckets)},
		{WindowStart: start, WindowSeconds: 60, Provider: "openai", Model: "gpt-4o", Team: "search", Project: "ranker",
			SrcPartition: clickhouse.RerateSrcPartition, ThroughOffset: 1, CostPicos: schemas.PicosOf(250_000_000),
			LatencyHist: make([]uint64, schemas.LatencyBuckets)},
	}
	return events, windows
}
