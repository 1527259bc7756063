package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/report"
	"github.com/aivis-dev/aivis/schemas"
)

// confidenceCatalog prices model-c exactly for its listed snapshot and, by
// its pattern, any other dated snapshot.
const confidenceCatalog = `catalog_version: "conf-1"
currency: USD
models:
  - id: conf/model-c
    provider: openai
    match:
      models: [model-c, model-c-2025-01-01]
      pattern: '^model-c(-\d{4}-\d{2}-\d{2})?$'
    effective_from: 2020-01-01T00:00:00Z
    rates: {input: "2.00", output: "8.00"}
    service_tiers:
      batch: {multiply: "0.5"}
`

// TestPricingConfidenceEndToEnd runs the pipeline (embedded broker, real
// ClickHouse) over an exactly priced event, one with an unknown service
// tier, one priced as another snapshot and one unpriced: the fallbacks
// carry their warnings into usage_events, count in the enrich metric, and
// the report's confidence section splits the model's cost by them.
func TestPricingConfidenceEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	cfg, token := testConfig(t, nil, 1)
	cfg.Enrich.CatalogPath = writeTestFile(t, "catalog.yaml", confidenceCatalog)
	cfg.Aggregate.IdleTimeout = time.Second
	cfg.Aggregate.ScoreAnomalies = false
	p, ctx := startPipeline(t, cfg, token, slog.New(slog.NewTextHandler(io.Discard, nil)))

	at := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	in, out := int64(1_000_000), int64(100_000) // 2.00 + 0.80 USD at list
	events := []struct {
		id, model, tier string
		wantWarning     string
	}{
		{"conf-exact", "model-c", "", ""},
		{"conf-exact-upper", "MODEL-C-2025-01-01", "batch", ""},
		{"conf-tier", "model-c", "turbo", pricing.WarnUnknownServiceTier},
		{"conf-snapshot", "model-c-2026-02-02", "", pricing.WarnSnapshotFallback},
		{"conf-unpriced", "model-zzz", "", ""},
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Brokers...), kgo.DefaultProduceTopic(schemas.TopicRaw))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i, e := range events {
		ev := schemas.Event{SchemaVersion: "1", EventID: e.id, Time: at.Add(time.Duration(i) * time.Second),
			Kind: schemas.KindLLMRequest, Source: "t", Provider: "openai", Model: e.model, ServiceTier: e.tier,
			Status: schemas.StatusOK, Labels: map[string]string{"team": "alpha"},
			Usage: &schemas.Usage{InputTokens: &in, OutputTokens: &out}}
		b, _ := json.Marshal(ev)
		recs = append(recs, &kgo.Record{Key: []byte(ev.EventID), Value: b})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := p.Drain(time.Minute); err != nil {
		t.Fatal(err)
	}

	// The warnings are stored per event.
	rows, err := p.Store.Query(ctx, `SELECT event_id, pricing_warnings FROM usage_events FINAL`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string][]string{}
	for rows.Next() {
		var id string
		var ws []string
		if err := rows.Scan(&id, &ws); err != nil {
			t.Fatal(err)
		}
		stored[id] = ws
	}
	rows.Close()
	for _, e := range events {
		ws, ok := stored[e.id]
		switch {
		case !ok:
			t.Errorf("%s: not stored", e.id)
		case e.wantWarning == "" && len(ws) != 0,
			e.wantWarning != "" && (len(ws) != 1 || !strings.HasPrefix(ws[0], e.wantWarning+": ")):
			t.Errorf("%s: pricing_warnings %q, want %q", e.id, ws, e.wantWarning)
		}
	}

	// The metric counts each fallback once, by provider and code.
	for _, code := range []string{pricing.WarnUnknownServiceTier, pricing.WarnSnapshotFallback} {
		if got := fallbackCount(t, p.Registry, "openai", code); got != 1 {
			t.Errorf("aivis_enrich_pricing_fallbacks_total{provider=openai,code=%s} = %v, want 1", code, got)
		}
	}

	// The report's confidence section splits model-c's cost. Rows are
	// per canonical model, so every spelling of model-c is one row; the
	// reported-names section keeps the spellings apart.
	res, err := report.Build(ctx, p.Store, report.Options{Since: 24 * time.Hour, Until: at.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	rowsBy := map[string]report.ConfidenceRow{}
	for _, r := range res.Confidence {
		rowsBy[r.Model] = r
	}
	usd := func(s string) decimal.Decimal { return decimal.RequireFromString(s) }
	c := rowsBy["model-c"]
	if !c.ExactCostUSD.Equal(usd("4.20")) || c.ExactRequests != 2 || !c.FallbackCostUSD.Equal(usd("5.60")) || c.FallbackRequests != 2 ||
		!slices.Equal(c.FallbackCodes, []string{pricing.WarnSnapshotFallback, pricing.WarnUnknownServiceTier}) || c.UnpricedRequests != 0 {
		t.Errorf("model-c confidence %+v", c)
	}
	if c := rowsBy["model-zzz"]; c.UnpricedRequests != 1 || !c.ExactCostUSD.IsZero() || c.FallbackRequests != 0 {
		t.Errorf("model-zzz confidence %+v", c)
	}
	// Models with fallbacks or unpriced requests come first.
	if n := len(res.Confidence); n != 2 || res.Confidence[0].Model != "model-c" {
		t.Errorf("confidence rows %+v", res.Confidence)
	}
	names := map[string]report.NameRow{}
	for _, n := range res.ReportedNames {
		names[n.ReportedName] = n
	}
	for name, want := range map[string]string{"model-c": "5.60", "MODEL-C-2025-01-01": "1.40", "model-c-2026-02-02": "2.80"} {
		if n := names[name]; n.Model != "model-c" || !n.CostUSD.Equal(usd(want)) {
			t.Errorf("reported name %s: %+v, want model-c costing %s", name, n, want)
		}
	}
	if n := names["model-c"]; n.Requests != 2 {
		t.Errorf("reported name model-c: %d requests, want 2", n.Requests)
	}

	var buf bytes.Buffer
	if err := report.Report(ctx, p.Store, report.Options{Since: 24 * time.Hour, Until: at.Add(time.Hour)}, &buf); err != nil {
		t.Fatal(err)
	}
	if s := buf.String(); !strings.Contains(s, "PRICING CONFIDENCE BY MODEL") || !strings.Contains(s, pricing.WarnSnapshotFallback) {
		t.Errorf("the table report has no confidence section:\n%s", s)
	}
}

// fallbackCount reads aivis_enrich_pricing_fallbacks_total{provider, code}.
func fallbackCount(t *testing.T, reg *prometheus.Registry, provider, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "aivis_enrich_pricing_fallbacks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["provider"] == provider && labels["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
