package pipeline

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/enrich"
	"github.com/aivis-dev/aivis/internal/config"
	"github.com/aivis-dev/aivis/internal/loadgen"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

const savingsCatalog = `catalog_version: savings-pipeline
currency: USD
models:
  - id: openai/gpt-4o-mini
    provider: openai
    match: {models: [gpt-4o-mini]}
    effective_from: 2024-07-18T00:00:00Z
    rates: {input: "0.15", output: "0.60"}
gpus:
  - id: test/h100
    match: {gpu_models: ["NVIDIA H100 80GB HBM3"]}
    effective_from: 2025-01-01T00:00:00Z
    gpu_hour: "3.60"
`

// TestAggregateRolePublishesSavingsAlerts runs the aggregate role as
// production does (real broker, real ClickHouse) with savings rules over
// yesterday's savings_gpu traffic: the recommender publishes the idle GPU
// (2592.00 USD a month) and the self-hosted deployment (2548.80) on
// aivis.alerts.v1 with category savings, and not the MIG slice (1944.00,
// below the 2000 USD threshold).
func TestAggregateRolePublishesSavingsAlerts(t *testing.T) {
	brokers := testenv.Kafka(t)
	addr, db := testenv.ClickHouseDatabase(t)
	dir := t.TempDir()
	catalogPath, rulesPath := filepath.Join(dir, "catalog.yaml"), filepath.Join(dir, "savings.yaml")
	if err := os.WriteFile(catalogPath, []byte(savingsCatalog), 0o600); err != nil {
		t.Fatal(err)
	}
	rules := "gpu:\n  mig_profiles: {\"NVIDIA H100 80GB HBM3\": [{profile: 2g.20gb, share: \"0.25\"}]}\n  comparables: {llama: openai/gpt-4o-mini}\n"
	if err := os.WriteFile(rulesPath, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Kafka.Brokers = brokers
	cfg.ClickHouse.Addr, cfg.ClickHouse.Database = addr, db
	cfg.Aggregate.Group = "aivis-savings-test-" + db
	cfg.Enrich.CatalogPath = catalogPath
	cfg.Savings.Path, cfg.Savings.Lookback, cfg.Savings.AlertMinMonthlyUSD = rulesPath, 24*time.Hour, "2000"
	cfg.MetricsAddr = ""
	if err := cfg.ValidateWithoutIngest(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store, err := chsink.Open(ctx, cfg.ClickHouse)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cat, err := pricing.LoadCatalog(catalogPath)
	if err != nil {
		t.Fatal(err)
	}
	owners, err := enrich.DefaultOwners()
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	evs, err := loadgen.SavingsTraffic(loadgen.SavingsGPU, today.Add(-24*time.Hour), 24, false)
	if err != nil {
		t.Fatal(err)
	}
	en := enrich.NewEnricher(cat, owners)
	stored := make([]schemas.StoredEvent, len(evs))
	for i := range evs {
		stored[i] = schemas.StoredEvent{Offset: int64(i), Event: en.Enrich(&evs[i])}
	}
	if err := store.Write(ctx, stored, nil); err != nil {
		t.Fatal(err)
	}

	started := time.Now().Add(-time.Second)
	p, err := Build(ctx, cfg, Options{Stages: []Stage{Aggregate}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Savings == nil {
		t.Fatal("the aggregate role has no savings recommender with savings.path set")
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(schemas.TopicAlerts))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []schemas.Alert
	for len(got) < 2 && ctx.Err() == nil {
		pollCtx, pollCancel := context.WithTimeout(ctx, 5*time.Second)
		fetches := cl.PollFetches(pollCtx)
		pollCancel()
		fetches.EachRecord(func(r *kgo.Record) {
			var a schemas.Alert
			if json.Unmarshal(r.Value, &a) == nil && a.Kind == schemas.AlertSavings && a.DetectedAt.After(started) &&
				strings.Contains(a.Scope, "team=ml") && a.WindowEnd.Equal(today) {
				got = append(got, a)
			}
		})
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("the aggregate role stopped with %v", err)
	}
	amounts := []string{}
	for _, a := range got {
		if a.Category != schemas.CategorySavings {
			t.Errorf("alert %s has category %q", a.AlertID, a.Category)
		}
		amounts = append(amounts, a.AmountUSD)
	}
	slices.Sort(amounts)
	if !slices.Equal(amounts, []string{"2548.80", "2592.00"}) {
		t.Fatalf("savings alerts with monthly savings %v, want 2548.80 and 2592.00", amounts)
	}
}
