package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/report"
	"github.com/aivis-dev/aivis/rerate"
	"github.com/aivis-dev/aivis/schemas"
)

// TestRerateOneDay prices a day of events, changes one price, re-rates the
// day, and requires the report to show exactly the new totals, verify to
// pass, and a second run to change nothing.
func TestRerateOneDay(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	// GPU intervals are priced by the hour; their price does not change,
	// so re-rating must keep their cost and their GPU columns.
	const gpus = `gpus:
  - id: e2e/h100
    match: {gpu_models: [H100]}
    effective_from: 2020-01-01T00:00:00Z
    gpu_hour: "4.00"
`
	changed := strings.Replace(strings.Replace(e2eCatalog, `rates: {input: "2.50"`, `rates: {input: "3.10"`, 1), `"e2e-1"`, `"e2e-2"`, 1) + gpus
	if changed == e2eCatalog+gpus {
		t.Fatal("the price change did not apply")
	}
	newCatalog := writeTestFile(t, "new.yaml", changed)

	cfg, token := testConfig(t, nil, 2)
	cfg.Enrich.CatalogPath = writeTestFile(t, "old.yaml", e2eCatalog+gpus)
	cfg.Aggregate.IdleTimeout = time.Second
	cfg.Aggregate.ScoreAnomalies = false
	p, ctx := startPipeline(t, cfg, token, slog.New(slog.NewTextHandler(io.Discard, nil)))

	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	type usage struct{ in, cacheRead, out int64 }
	var oldPicos, newPicos int64
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Brokers...), kgo.DefaultProduceTopic(schemas.TopicRaw))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := 0; i < 300; i++ {
		model, provider := "model-a", "openai"
		if i%3 == 0 {
			model, provider = "model-b", "anthropic"
		}
		u := usage{in: int64(1000 + i*37), cacheRead: int64(i * 3), out: int64(50 + i)}
		ev := schemas.Event{SchemaVersion: "1", EventID: fmt.Sprintf("rr-%d", i), Time: day.Add(10*time.Hour + time.Duration(i)*time.Second),
			Kind: schemas.KindLLMRequest, Source: "t", Provider: provider, Model: model, Status: schemas.StatusOK,
			Labels: map[string]string{"team": "alpha"},
			Usage:  &schemas.Usage{InputTokens: &u.in, CacheReadInputTokens: &u.cacheRead, OutputTokens: &u.out}}
		r := e2eRates[model]
		cost := (u.in-u.cacheRead)*r.in + u.cacheRead*r.cacheRead + u.out*r.out
		oldPicos += cost
		if model == "model-a" {
			cost += (u.in - u.cacheRead) * 600_000 // input 2.50 → 3.10 per 1M
		}
		newPicos += cost
		b, _ := json.Marshal(ev)
		recs = append(recs, &kgo.Record{Key: []byte(ev.EventID), Value: b})
	}
	// 10 GPU intervals of 90 allocated seconds at $4.00 an hour: $0.10 each.
	const gpuEvents, gpuPicos = 10, 100_000_000_000
	for i := 0; i < gpuEvents; i++ {
		energy := float64(500 + i)
		ev := schemas.Event{SchemaVersion: "1", EventID: fmt.Sprintf("rr-gpu-%d", i), Time: day.Add(11*time.Hour + time.Duration(i)*time.Minute),
			Kind: schemas.KindGPUUsage, Source: "t", Labels: map[string]string{"team": "alpha"},
			GPU: &schemas.GPUUsage{GPUModel: "H100", Host: "h1", IntervalSeconds: 90, AllocatedSeconds: 90, BusySeconds: 45,
				EnergyJoules: &energy, OwnerKind: "k8s_pod", OwnerID: "pod-1"}}
		oldPicos += gpuPicos
		newPicos += gpuPicos
		b, _ := json.Marshal(ev)
		recs = append(recs, &kgo.Record{Key: []byte(ev.EventID), Value: b})
	}
	// 5 events that each sum an interval of a self-hosted server's 7
	// requests (request_count): the windows count 35 requests for them.
	const intervals, perInterval = 5, 7
	for i := 0; i < intervals; i++ {
		in, out := int64(4000+i), int64(900+i)
		ev := schemas.Event{SchemaVersion: "1", EventID: fmt.Sprintf("rr-interval-%d", i), Time: day.Add(12*time.Hour + time.Duration(i)*time.Minute),
			Kind: schemas.KindLLMRequest, Source: "t", Provider: "anthropic", Model: "model-b", Status: schemas.StatusOK,
			Operation: "serving.interval", RequestCount: schemas.Int64(perInterval), Labels: map[string]string{"team": "alpha"},
			Usage: &schemas.Usage{InputTokens: &in, OutputTokens: &out}}
		r := e2eRates["model-b"]
		oldPicos += in*r.in + out*r.out
		newPicos += in*r.in + out*r.out
		b, _ := json.Marshal(ev)
		recs = append(recs, &kgo.Record{Key: []byte(ev.EventID), Value: b})
	}
	// (a GPU interval counts as one, as it always has)
	const events, requests = 300 + gpuEvents + intervals, 300 + gpuEvents + intervals*perInterval
	windowRequests := func() uint64 {
		t.Helper()
		var n uint64
		if err := p.Store.QueryRow(ctx, `SELECT toUInt64(sum(requests)) FROM cost_by_window`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	gpuColumns := func() string {
		t.Helper()
		var n uint64
		var model, host, owner string
		var alloc, busy, joules float64
		if err := p.Store.QueryRow(ctx, `SELECT count(), any(gpu_model), any(gpu_host), any(gpu_owner_id), sum(allocated_gpu_seconds), sum(busy_gpu_seconds), sum(energy_joules)
FROM usage_events FINAL WHERE kind = 'gpu.usage'`).Scan(&n, &model, &host, &owner, &alloc, &busy, &joules); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d %s %s %s %g %g %g", n, model, host, owner, alloc, busy, joules)
	}
	const wantGPU = "10 H100 h1 pod-1 900 450 5045"
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := p.Drain(time.Minute); err != nil {
		t.Fatal(err)
	}

	reportCost := func() decimal.Decimal {
		res, err := report.Build(ctx, p.Store, report.Options{Since: 24 * time.Hour, Until: day.Add(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return res.Totals.CostUSD
	}
	if got, want := reportCost(), decimal.New(oldPicos, -12); !got.Equal(want) {
		t.Fatalf("before re-rating the report shows $%s, want $%s", got, want)
	}
	if got := gpuColumns(); got != wantGPU {
		t.Fatalf("before re-rating the GPU intervals are stored as %q, want %q", got, wantGPU)
	}
	if got := windowRequests(); got != requests {
		t.Fatalf("before re-rating cost_by_window counts %d requests, want %d", got, requests)
	}

	catalog, err := pricing.LoadCatalog(newCatalog)
	if err != nil {
		t.Fatal(err)
	}
	// A dry run counts only the events whose cost changes, and writes
	// nothing.
	dry, err := rerate.Run(ctx, p.Store, catalog, day, day.Add(24*time.Hour), cfg.Aggregate.Window, true)
	if err != nil {
		t.Fatal(err)
	}
	if dry.Events != events || dry.Changed != 200 || dry.Rewritten != events {
		t.Errorf("dry run: %d events, %d changed, %d rewritten; want %d, 200 and %d", dry.Events, dry.Changed, dry.Rewritten, events, events)
	}
	var out bytes.Buffer
	printRerate(&out, dry, catalog.Version(), true, time.Second)
	if !strings.Contains(out.String(), "315 events, 200 change cost") || !strings.Contains(out.String(), "200 of 200 events") || strings.Contains(out.String(), "model-b") {
		t.Errorf("dry run prints:\n%s", out.String())
	}
	if got, want := reportCost(), decimal.New(oldPicos, -12); !got.Equal(want) {
		t.Fatalf("after a dry run the report shows $%s, want $%s", got, want)
	}
	for run := 1; run <= 2; run++ {
		res, err := rerate.Run(ctx, p.Store, catalog, day, day.Add(24*time.Hour), cfg.Aggregate.Window, false)
		if err != nil {
			t.Fatal(err)
		}
		// Every event is rewritten under the new catalog version, but only
		// the 200 model-a ones change cost; a second run finds nothing.
		wantChanged, wantRewritten := 200, events
		if run == 2 {
			wantChanged, wantRewritten = 0, 0
		}
		if res.Events != events || res.Changed != wantChanged || res.Rewritten != wantRewritten {
			t.Errorf("run %d: %d events, %d changed, %d rewritten; want %d, %d and %d", run, res.Events, res.Changed, res.Rewritten, events, wantChanged, wantRewritten)
		}
		if got, want := reportCost(), decimal.New(newPicos, -12); !got.Equal(want) {
			t.Fatalf("run %d: after re-rating the report shows $%s, want $%s", run, got, want)
		}
		rec, err := p.Store.Reconcile(ctx, day, day.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if got := gpuColumns(); got != wantGPU {
			t.Errorf("run %d: after re-rating the GPU intervals are stored as %q, want %q", run, got, wantGPU)
		}
		if got := windowRequests(); got != requests {
			t.Errorf("run %d: after re-rating cost_by_window counts %d requests, want %d", run, got, requests)
		}
		if len(rec.Diffs) != 0 || rec.Events != events {
			t.Fatalf("run %d: verify finds %d events and differences %v", run, rec.Events, rec.Diffs)
		}
	}
}

// TestPrintRerateEscapesNames: provider and model names in rerate's
// summary print escaped, so a hostile name cannot drive the terminal.
func TestPrintRerateEscapesNames(t *testing.T) {
	var buf bytes.Buffer
	printRerate(&buf, &rerate.Result{Events: 2, Changed: 1, Models: []rerate.ModelChange{
		{Provider: "\u009b2J", Model: "gpt\u202eevil\x1b]0;pwned\x07", Events: 1, OldPicos: schemas.PicosOf(1), NewPicos: schemas.PicosOf(2)},
	}}, "v1", true, time.Second)
	out := buf.String()
	if !strings.Contains(out, `\u009b2J`) || !strings.Contains(out, `gpt\u202eevil\x1b]0;pwned\a`) {
		t.Errorf("names are not escaped:\n%q", out)
	}
	if strings.ContainsAny(out, "\x1b\x07\u009b\u202e") {
		t.Errorf("rerate prints control characters raw:\n%q", out)
	}
}
