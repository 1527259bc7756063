package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/enrich"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

const gpuTestCatalog = `catalog_version: gpu-e2e
currency: USD
models:
  - id: openai/gpt-4o-mini
    provider: openai
    match: {models: [gpt-4o-mini]}
    effective_from: 2024-07-18T00:00:00Z
    rates: {input: "0.15", output: "0.60"}
gpus:
  - id: test/h100
    match: {gpu_models: [H100]}
    effective_from: 2025-01-01T00:00:00Z
    gpu_hour: "3.60"
`

// TestGPUAndSelfHostedEndToEnd prices gpu.usage and serving llm.request
// events with the Enricher, writes them through Store.Write (twice: a
// replay must not count twice) and checks the report against numbers
// worked by hand. At 3.60 USD per GPU-hour a GPU-second is 0.001 USD.
//
//	ml:       3600 s (deployment llama) + 1800 s = 5.4 USD; busy 2700 + 900
//	          = 3600 s of 5400, efficiency 2/3; 1.8 MJ + 0.9 MJ = 0.75 kWh,
//	          0.075 USD at 0.10/kWh, 300 gCO2 at 400 g/kWh.
//	platform: 1800 s idle = 1.8 USD, all of it idle cost; 0.36 MJ = 0.1 kWh.
//	llama:    3.6 USD for 2 requests of 600,000 in + 400,000 out = 2M
//	          tokens, 1.8 USD per 1M; gpt-4o-mini would cost 1.2M × 0.15 +
//	          0.8M × 0.60 = 0.66 USD, 0.33 per 1M.
func TestGPUAndSelfHostedEndToEnd(t *testing.T) {
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
	if err := s.WriteGPUSettings(ctx, 0.10, 400); err != nil {
		t.Fatal(err)
	}
	cat, err := pricing.ParseCatalog([]byte(gpuTestCatalog))
	if err != nil {
		t.Fatal(err)
	}
	owners, err := enrich.DefaultOwners()
	if err != nil {
		t.Fatal(err)
	}
	en := enrich.NewEnricher(cat, owners)

	var stored []schemas.StoredEvent
	add := func(ev schemas.Event) {
		ev.SchemaVersion, ev.Source = schemas.SchemaVersion, "test"
		ev.EventID = fmt.Sprintf("01JGPUE2E%017d", len(stored))
		stored = append(stored, schemas.StoredEvent{Offset: int64(len(stored)), Event: en.Enrich(&ev)})
	}
	gpu := func(labels map[string]string, ownerKind string, alloc, busy, joules float64) {
		add(schemas.Event{Time: t0.Add(time.Duration(len(stored)) * time.Minute), Kind: schemas.KindGPUUsage, Labels: labels,
			GPU: &schemas.GPUUsage{GPUModel: "H100", Host: "gpu-1", IntervalSeconds: alloc, AllocatedSeconds: alloc, BusySeconds: busy,
				EnergyJoules: &joules, OwnerKind: ownerKind, OwnerID: ownerKind + "-id"}})
	}
	gpu(map[string]string{"team": "ml", "deployment": "llama"}, "k8s_pod", 3600, 2700, 1_800_000)
	gpu(map[string]string{"team": "ml"}, "k8s_pod", 1800, 900, 900_000)
	gpu(map[string]string{"team": "platform"}, "idle", 1800, 0, 360_000)
	for range 2 {
		in, out := int64(600_000), int64(400_000)
		add(schemas.Event{Time: t0.Add(5 * time.Minute), Kind: schemas.KindLLMRequest, Provider: "self-hosted", Model: "llama-3-70b",
			Status: schemas.StatusOK, Labels: map[string]string{"team": "ml", "deployment": "llama"},
			Usage: &schemas.Usage{InputTokens: &in, OutputTokens: &out}})
	}
	for range 2 {
		if err := s.Write(ctx, stored, nil); err != nil {
			t.Fatal(err)
		}
	}

	opts := Options{Since: 48 * time.Hour, Until: time.Date(2025, 3, 11, 0, 0, 0, 0, time.UTC),
		Comparables: map[string]string{"llama": "openai/gpt-4o-mini"}, Catalog: cat}
	res, err := Build(ctx, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	d := decimal.RequireFromString
	near := func(what string, got, want float64) {
		t.Helper()
		if diff := got - want; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	if len(res.GPU) != 2 {
		t.Fatalf("GPU rows %+v, want ml and platform", res.GPU)
	}
	ml, platform := res.GPU[0], res.GPU[1]
	if ml.Team != "ml" || !ml.CostUSD.Equal(d("5.4")) || !ml.IdleCostUSD.IsZero() {
		t.Errorf("ml = %+v, want 5.4 USD and no idle cost", ml)
	}
	near("ml allocated", ml.AllocatedGPUSeconds, 5400)
	near("ml busy", ml.BusyGPUSeconds, 3600)
	near("ml idle seconds", ml.IdleGPUSeconds, 1800)
	near("ml efficiency", ml.Efficiency, 2.0/3)
	near("ml energy kWh", ml.EnergyKWh, 0.75)
	near("ml energy USD", ml.EnergyCostUSD, 0.075)
	near("ml gCO2", ml.EmissionsGCO2, 300)
	if platform.Team != "platform" || !platform.CostUSD.Equal(d("1.8")) || !platform.IdleCostUSD.Equal(d("1.8")) {
		t.Errorf("platform = %+v, want 1.8 USD, all idle", platform)
	}
	near("platform energy kWh", platform.EnergyKWh, 0.1)
	near("platform efficiency", platform.Efficiency, 0)

	for _, c := range res.Confidence {
		if c.Provider == "" || c.Model == "" {
			t.Errorf("pricing confidence has a row without provider or model (GPU time?): %+v", c)
		}
	}

	if len(res.SelfHosted) != 1 {
		t.Fatalf("self-hosted rows %+v, want llama", res.SelfHosted)
	}
	sh := res.SelfHosted[0]
	if sh.Deployment != "llama" || !sh.GPUCostUSD.Equal(d("3.6")) || sh.Requests != 2 || sh.tokens() != 2_000_000 ||
		!sh.CostPer1MUSD.Equal(d("1.8")) || sh.Comparable != "openai/gpt-4o-mini" || !sh.ComparablePriced ||
		!sh.ComparableCostPer1MUSD.Equal(d("0.33")) {
		t.Errorf("llama = %+v, want 3.6 USD, 2 requests, 2M tokens, 1.8 per 1M against 0.33", sh)
	}

	// The view computes the per-day figure in ClickHouse too.
	var perDay decimal.Decimal
	if err := each(ctx, s, "per day", "SELECT cost_per_1m_tokens_usd FROM "+clickhouse.ViewSelfHostedCost+" WHERE deployment = 'llama'", nil,
		func(scan func(...any) error) error { return scan(&perDay) }); err != nil {
		t.Fatal(err)
	}
	if !perDay.Equal(d("1.8")) {
		t.Errorf("view cost_per_1m_tokens_usd = %s, want 1.8", perDay)
	}

	for _, format := range []string{FormatTable, FormatCSV, FormatJSON} {
		var buf bytes.Buffer
		o := opts
		o.Format = format
		if err := Report(ctx, s, o, &buf); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		var wants []string
		switch format {
		case FormatTable:
			wants = []string{"GPU COST BY TEAM", "66.7%", "1.800000", "SELF-HOSTED VS API", "openai/gpt-4o-mini", "0.330000"}
		case FormatCSV:
			wants = []string{"gpu,,,,ml,,,,,,,,,5.4,", ",0,0.6666666666666666", "self_hosted,,,,,,2,,,1200000,800000,,,3.6,", "llama,1.8,openai/gpt-4o-mini,0.33"}
		case FormatJSON:
			var back Result
			if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
				t.Fatal(err)
			}
			if len(back.GPU) != 2 || !back.SelfHosted[0].CostPer1MUSD.Equal(d("1.8")) {
				t.Errorf("JSON gpu %+v self_hosted %+v", back.GPU, back.SelfHosted)
			}
		}
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s report lacks %q:\n%s", format, w, out)
			}
		}
	}
}
