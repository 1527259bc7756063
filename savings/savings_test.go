package savings_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/enrich"
	"github.com/aivis-dev/aivis/internal/loadgen"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/savings"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCatalog holds the list prices the figures below are worked from.
const testCatalog = `catalog_version: savings-e2e
currency: USD
models:
  - id: anthropic/claude-sonnet-4-5
    provider: anthropic
    match: {models: [claude-sonnet-4-5]}
    effective_from: 2025-09-29T00:00:00Z
    rates: {input: "3.00", cache_read_input: "0.30", cache_write_input: "3.75", output: "15.00"}
    service_tiers: {batch: {multiply: "0.5"}}
  - id: openai/gpt-4o
    provider: openai
    match: {models: [gpt-4o]}
    effective_from: 2024-05-13T00:00:00Z
    rates: {input: "2.50", cache_read_input: "1.25", output: "10.00"}
    service_tiers: {batch: {multiply: "0.5"}}
  - id: openai/gpt-4.1
    provider: openai
    match: {models: [gpt-4.1]}
    effective_from: 2025-04-14T00:00:00Z
    rates: {input: "2.00", cache_read_input: "0.50", output: "8.00"}
    service_tiers: {batch: {multiply: "0.5"}}
  - id: openai/gpt-4.1-mini
    provider: openai
    match: {models: [gpt-4.1-mini]}
    effective_from: 2025-04-14T00:00:00Z
    rates: {input: "0.40", cache_read_input: "0.10", output: "1.60"}
    service_tiers: {batch: {multiply: "0.5"}}
  - id: openai/gpt-4.1-nano
    provider: openai
    match: {models: [gpt-4.1-nano]}
    effective_from: 2025-04-14T00:00:00Z
    rates: {input: "0.10", cache_read_input: "0.025", output: "0.40"}
    service_tiers: {batch: {multiply: "0.5"}}
  - id: openai/gpt-4o-mini
    provider: openai
    match: {models: [gpt-4o-mini]}
    effective_from: 2024-07-18T00:00:00Z
    rates: {input: "0.15", cache_read_input: "0.075", output: "0.60"}
    service_tiers: {batch: {multiply: "0.5"}}
gpus:
  - id: test/h100
    match: {gpu_models: ["NVIDIA H100 80GB HBM3"]}
    effective_from: 2025-01-01T00:00:00Z
    gpu_hour: "3.60"
`

const testRules = `equivalents:
  models:
    - {from: openai/gpt-4o, to: [openai/gpt-4.1]}
provisioned:
  - {name: gpt-4.1-nano-ptu, provider: openai, model: gpt-4.1-nano, unit_usd_per_hour: "0.30", unit_tokens_per_hour: 2000000, max_units: 2}
gpu:
  mig_profiles:
    "NVIDIA H100 80GB HBM3":
      - {profile: 3g.40gb, share: "0.5"}
      - {profile: 1g.10gb, share: "0.125"}
      - {profile: 2g.20gb, share: "0.25"}
  comparables: {llama: openai/gpt-4o-mini}
`

var day0 = time.Date(2025, 11, 10, 0, 0, 0, 0, time.UTC)

type fixture struct {
	store *clickhouse.Store
	cat   *pricing.Catalog
	rules savings.Rules
	en    *enrich.Enricher
}

func newFixture(t *testing.T) *fixture {
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
	cat, err := pricing.ParseCatalog([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := savings.ParseRules([]byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	owners, err := enrich.DefaultOwners()
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{store: s, cat: cat, rules: rules, en: enrich.NewEnricher(cat, owners)}
}

// load writes a savings scenario's day of traffic, twice: a replay must
// not count twice.
func (f *fixture) load(t *testing.T, name string, control bool) {
	t.Helper()
	evs, err := loadgen.SavingsTraffic(name, day0, 24, control)
	if err != nil {
		t.Fatal(err)
	}
	stored := make([]schemas.StoredEvent, len(evs))
	for i := range evs {
		if err := evs[i].Validate(); err != nil {
			t.Fatalf("scenario %s event %d is invalid: %v", name, i, err)
		}
		stored[i] = schemas.StoredEvent{Offset: int64(i), Event: f.en.Enrich(&evs[i])}
	}
	for range 2 {
		if err := f.store.Write(context.Background(), stored, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) build(t *testing.T) *savings.Result {
	t.Helper()
	res, err := savings.Build(context.Background(), f.store, f.cat, f.rules, day0, day0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

type want struct {
	kind    string
	scope   string
	current string
	saving  string
	monthly string
}

// TestScenariosPriceTheExpectedSaving loads each savings scenario's day on
// its own and checks the recommendations against figures worked by hand
// from testCatalog (per hour, then × 24 for the day, × 30 for the month):
//
//	caching:     10 × (10,000 × 3.00 + 500 × 15.00) / 1M = 0.375 now; one
//	             writer 8,000 × 3.75 + 2,000 × 3.00 + 500 × 15 = 0.0435 and
//	             nine readers 9 × (8,000 × 0.30 + 2,000 × 3 + 7,500) / 1M =
//	             0.1431: 0.1884 an hour, 4.5216 a day, 135.648 → 135.65.
//	batch:       20 × (2,000 × 0.40 + 1,000 × 1.60) / 1M = 0.048, half at
//	             the batch tier: 0.024 an hour, 0.576 a day, 17.28.
//	model:       10 × (4,000 × 2.50 + 800 × 10) / 1M = 0.18 on gpt-4o,
//	             10 × (4,000 × 2 + 800 × 8) / 1M = 0.144 on gpt-4.1: 0.036,
//	             0.864 a day, 25.92.
//	provisioned: 10 × (150,000 × 0.10 + 50,000 × 0.40) / 1M = 0.35 an hour
//	             on demand for 2M tokens, one unit of 2M tokens 0.30: 0.05,
//	             1.2 a day, 36.00 (two units cost more).
//	gpu:         gpu-a idle 24 h × 3.60 = 86.4 → 2592.00; gpu-b busy 25%,
//	             a 2g.20gb slice at 0.25 of 86.4 saves 64.8 → 1944.00; the
//	             llama deployment's GPU costs 86.4 while gpt-4o-mini prices
//	             its 240 requests at 240 × (20,000 × 0.15 + 5,000 × 0.60) /
//	             1M = 1.44: 84.96 → 2548.80.
func TestScenariosPriceTheExpectedSaving(t *testing.T) {
	cases := []struct {
		scenario string
		want     []want
	}{
		{loadgen.SavingsCaching, []want{{savings.KindCaching, "team=support project=chatbot", "9", "4.5216", "135.65"}}},
		{loadgen.SavingsBatch, []want{{savings.KindTier, "team=research project=evals", "1.152", "0.576", "17.28"}}},
		{loadgen.SavingsModel, []want{{savings.KindModel, "team=sales model=openai/gpt-4o task=summarize", "4.32", "0.864", "25.92"}}},
		{loadgen.SavingsProvisioned, []want{{savings.KindProvisioned, "model=openai/gpt-4.1-nano", "8.4", "1.2", "36"}}},
		{loadgen.SavingsGPU, []want{
			{savings.KindIdleGPU, "team=ml host=gpu-a", "86.4", "86.4", "2592"},
			{savings.KindSelfHosted, "team=ml deployment=llama", "86.4", "84.96", "2548.8"},
			{savings.KindMIG, "team=ml host=gpu-b", "86.4", "64.8", "1944"},
		}},
	}
	for _, c := range cases {
		t.Run(c.scenario, func(t *testing.T) {
			f := newFixture(t)
			f.load(t, c.scenario, false)
			res := f.build(t)
			if len(res.Recommendations) != len(c.want) {
				t.Fatalf("got %d recommendations, want %d: %s", len(res.Recommendations), len(c.want), dump(res))
			}
			total := decimal.Zero
			for i, w := range c.want {
				r := res.Recommendations[i]
				d := decimal.RequireFromString
				if r.Kind != w.kind || !strings.HasPrefix(r.Scope.String(), w.scope) ||
					!r.CurrentCostUSD.Equal(d(w.current)) || !r.SavingUSD.Equal(d(w.saving)) || !r.MonthlySavingUSD.Equal(d(w.monthly)) {
					t.Errorf("recommendation %d = %s %q current %s saving %s monthly %s, want %s %q… %s %s %s",
						i, r.Kind, r.Scope.String(), r.CurrentCostUSD, r.SavingUSD, r.MonthlySavingUSD, w.kind, w.scope, w.current, w.saving, w.monthly)
				}
				if r.Assumption == "" || r.Action == "" || r.Evidence.Detail == "" || len(r.ID) != 16 {
					t.Errorf("recommendation %d lacks an action, evidence, assumption or id: %+v", i, r)
				}
				total = total.Add(r.MonthlySavingUSD)
			}
			if !res.MonthlySavingUSD.Equal(total) {
				t.Errorf("total %s, want %s", res.MonthlySavingUSD, total)
			}
			var out bytes.Buffer
			if err := savings.Write(&out, res, "table"); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), c.want[0].kind) || !strings.Contains(out.String(), "assumption:") {
				t.Errorf("table lacks the recommendation:\n%s", out.String())
			}
		})
	}
}

// TestNoOpportunityNoRecommendation loads each scenario's control traffic,
// the same workload already cached, on the batch tier, on the cheaper
// model, bursty instead of steady, and on busy GPUs that cost less than
// the API, and expects no recommendation at all.
func TestNoOpportunityNoRecommendation(t *testing.T) {
	f := newFixture(t)
	for _, name := range loadgen.SavingsScenarios {
		f.load(t, name, true)
	}
	if res := f.build(t); len(res.Recommendations) != 0 {
		t.Fatalf("control traffic got recommendations: %s", dump(res))
	}
}

type recordingSink struct {
	mu     sync.Mutex
	alerts []schemas.Alert
}

func (r *recordingSink) Publish(_ context.Context, a []schemas.Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts = append(r.alerts, a...)
	return nil
}

// TestRecommenderPublishesOncePerLookback runs the daily recommender over
// the GPU scenario with a two-day lookback (monthly = saving × 15): the
// day after it, the three recommendations are stored and the two above
// 1,000 USD a month (idle 1296.00, self-hosted 1274.40, not MIG 972.00)
// are published with category
// savings; a restart the same day recomputes nothing, and the next day,
// whose lookback still holds the same usage, stores them again without
// publishing them again.
func TestRecommenderPublishesOncePerLookback(t *testing.T) {
	f := newFixture(t)
	f.load(t, loadgen.SavingsGPU, false)
	ctx := context.Background()
	cfg := savings.DefaultConfig()
	cfg.Lookback, cfg.AlertMinMonthlyUSD = 48*time.Hour, "1000"
	sink := &recordingSink{}
	newRec := func(now time.Time) *savings.Recommender {
		r, err := savings.NewRecommender(cfg, f.cat, f.store, sink, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		// The rules of the file, as the test cannot write one.
		savings.SetRules(r, f.rules)
		r.SetClock(func() time.Time { return now })
		return r
	}
	day1 := day0.Add(24*time.Hour + 3*time.Hour)
	recs, err := newRec(day1).RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("day 1: %d recommendations, want 3", len(recs))
	}
	if len(sink.alerts) != 2 {
		t.Fatalf("day 1: %d alerts, want 2 (idle GPU 1296.00, self-hosted 1274.40): %+v", len(sink.alerts), sink.alerts)
	}
	for _, a := range sink.alerts {
		if a.Kind != schemas.AlertSavings || a.Category != schemas.CategorySavings || !strings.HasPrefix(a.AlertID, "savings:") ||
			!a.WindowEnd.Equal(day0.Add(24*time.Hour)) || a.AmountUSD == "" || len(a.Contributors) != 1 {
			t.Errorf("alert %+v", a)
		}
		b, _ := json.Marshal(a)
		if !strings.Contains(string(b), `"category":"savings"`) {
			t.Errorf("alert JSON lacks the category: %s", b)
		}
	}
	if sink.alerts[0].AmountUSD != "1296.00" {
		t.Errorf("first alert's monthly saving %s, want 1296.00", sink.alerts[0].AmountUSD)
	}
	// A restart on the same day finds the stored rows.
	if recs, err := newRec(day1.Add(time.Hour)).RunOnce(ctx); err != nil || recs != nil {
		t.Fatalf("restart: %v, %d recommendations, want none recomputed", err, len(recs))
	}
	day2 := day1.Add(24 * time.Hour)
	if recs, err := newRec(day2).RunOnce(ctx); err != nil || len(recs) != 3 {
		t.Fatalf("day 2: %v, %d recommendations, want 3", err, len(recs))
	}
	if len(sink.alerts) != 2 {
		t.Fatalf("day 2 published again: %d alerts", len(sink.alerts))
	}
	var rows, published uint64
	rs, err := f.store.Query(ctx, `SELECT count(), sum(published) FROM `+clickhouse.ViewSavings+` WHERE id != ''`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		if err := rs.Scan(&rows, &published); err != nil {
			t.Fatal(err)
		}
	}
	if rows != 6 || published != 4 {
		t.Errorf("stored %d rows, %d marked published; want 6 and 4 (two days)", rows, published)
	}
}

func dump(res *savings.Result) string {
	b, _ := json.MarshalIndent(res.Recommendations, "", "  ")
	return string(b)
}

// TestLatencyRuleMarksSlowScopes: the model scenario's requests carry no
// non-interactive label but take 1,200 ms; with min_p50_latency_ms 1000
// their scope is not interactive, so half of their 4.32 USD a day is saved
// at the batch tier (2.16, 64.80 a month), beside the cheaper model.
func TestLatencyRuleMarksSlowScopes(t *testing.T) {
	f := newFixture(t)
	f.load(t, loadgen.SavingsModel, false)
	rules, err := savings.ParseRules([]byte(testRules + "tiers: {min_p50_latency_ms: 1000}\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.rules = rules
	res := f.build(t)
	if len(res.Recommendations) != 2 {
		t.Fatalf("got %s, want a batch tier and a cheaper model recommendation", dump(res))
	}
	r := res.Recommendations[0]
	if r.Kind != savings.KindTier || !r.SavingUSD.Equal(decimal.RequireFromString("2.16")) ||
		!r.MonthlySavingUSD.Equal(decimal.RequireFromString("64.8")) || !strings.Contains(r.Evidence.Detail, "median latency") {
		t.Errorf("batch recommendation %+v", r)
	}
	rules.Tiers.MinP50LatencyMs = 1500
	f.rules = rules
	if res := f.build(t); len(res.Recommendations) != 1 || res.Recommendations[0].Kind != savings.KindModel {
		t.Errorf("with a 1500 ms rule: %s, want only the cheaper model", dump(res))
	}
}

// TestRecommenderAlertsOnTheTopic runs the recommender with the alerts
// sink the aggregate role gives it, on an in-process Kafka cluster: the
// caching scenario's recommendation (135.65 USD a month over a one-day
// lookback) is above 100 USD and arrives on aivis.alerts.v1 keyed by its
// alert id, with category savings.
func TestRecommenderAlertsOnTheTopic(t *testing.T) {
	f := newFixture(t)
	f.load(t, loadgen.SavingsCaching, false)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, schemas.TopicAlerts))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(schemas.TopicAlerts))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cfg := savings.DefaultConfig()
	cfg.Lookback = 24 * time.Hour
	r, err := savings.NewRecommender(cfg, f.cat, f.store, aggregate.KafkaAlerts{Client: cl, Topic: schemas.TopicAlerts},
		prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.SetClock(func() time.Time { return day0.Add(25 * time.Hour) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	fetches := cl.PollRecords(ctx, 10)
	if err := fetches.Err(); err != nil {
		t.Fatal(err)
	}
	recs := fetches.Records()
	if len(recs) != 1 {
		t.Fatalf("%d alerts on the topic, want 1", len(recs))
	}
	var a schemas.Alert
	if err := json.Unmarshal(recs[0].Value, &a); err != nil {
		t.Fatal(err)
	}
	if a.Category != "savings" || a.Kind != "savings" || a.AmountUSD != "135.65" || string(recs[0].Key) != a.AlertID ||
		!strings.Contains(a.Scope, "prompt_caching team=support project=chatbot") {
		t.Errorf("alert %+v (key %s)", a, recs[0].Key)
	}
	if err := r.Ready(); err != nil {
		t.Errorf("not ready after a good run: %v", err)
	}
}
