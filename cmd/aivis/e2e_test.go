package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

const e2eCatalog = `catalog_version: "e2e-1"
currency: USD
models:
  - id: e2e/model-a
    provider: openai
    match: {models: [model-a]}
    effective_from: 2020-01-01T00:00:00Z
    rates: {input: "2.50", cache_read_input: "1.25", output: "10.00"}
    source_url: https://example.com/prices
    retrieved_at: 2026-11-26
  - id: e2e/model-b
    provider: anthropic
    match: {models: [model-b]}
    effective_from: 2020-01-01T00:00:00Z
    rates: {input: "0.0375", cache_read_input: "0.0075", cache_write_input: "0.046875", output: "0.15"}
    source_url: https://example.com/prices
    retrieved_at: 2026-11-26
`

// Rates in pico-USD per token (USD per 1M tokens × 10^6), written out by
// hand so that the expected costs do not reuse the enrich code.
var e2eRates = map[string]struct{ in, cacheRead, cacheWrite, out int64 }{
	"model-a": {in: 2_500_000, cacheRead: 1_250_000, cacheWrite: 2_500_000, out: 10_000_000},
	"model-b": {in: 37_500, cacheRead: 7_500, cacheWrite: 46_875, out: 150_000},
}

type e2eTotal struct {
	Requests, Input, CacheRead, Output int64
	CostPicos                          int64
}

// addExpected adds one request to the expected totals of model/team, priced
// with e2eRates.
func addExpected(want map[string]*e2eTotal, model, team string, in, cacheRead, cacheWrite, out int64) {
	r := e2eRates[model]
	k := model + "/" + team
	if want[k] == nil {
		want[k] = &e2eTotal{}
	}
	w := want[k]
	w.Requests++
	w.Input += in
	w.CacheRead += cacheRead
	w.Output += out
	w.CostPicos += (in-cacheRead-cacheWrite)*r.in + cacheRead*r.cacheRead + cacheWrite*r.cacheWrite + out*r.out
}

// TestEndToEnd sends a known event set through HTTP ingest → Kafka →
// enrich → aggregate → ClickHouse and compares per-(model, team) totals
// with values computed here. The set holds duplicate submissions,
// out-of-order, late-but-allowed, too-late and malformed events.
//
// It runs on the embedded cluster that `aivis dev` uses and, in
// TestEndToEndRealBroker, on the real Apache Kafka broker.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs ClickHouse")
	}
	endToEnd(t, nil)
}

func TestEndToEndRealBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs Kafka and ClickHouse")
	}
	brokers := testenv.Kafka(t)
	deleteAivisTopics(t, brokers)
	endToEnd(t, brokers)
}

// deleteAivisTopics deletes the pipeline's topics, which have fixed names,
// so that a test on the shared broker starts from none.
func deleteAivisTopics(t *testing.T, brokers []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.DeleteTopics(context.Background(), bus.Topics...); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		topics, err := adm.ListTopics(context.Background(), bus.Topics...)
		left := 0
		for _, d := range topics {
			if d.Err == nil {
				left++
			}
		}
		if err == nil && left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topics %v were not deleted: %v", bus.Topics, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func endToEnd(t *testing.T, brokers []string) {
	alphaKey, betaKey := "sk-e2e-alpha-key", "sk-e2e-beta-key"
	owners := fmt.Sprintf("trust_event_labels: true\napi_keys:\n  %q: {team: alpha, project: search}\n  %q: {team: beta, project: chat}\n",
		ingest.APIKeyID(alphaKey), ingest.APIKeyID(betaKey))
	cfg, token := testConfig(t, brokers, 3)
	cfg.Enrich.OwnersPath = writeTestFile(t, "owners.yaml", owners)
	cfg.Aggregate.IdleTimeout = 3 * time.Second
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	p, ctx := startPipeline(t, cfg, token, log)

	// Build the event set and the expected totals side by side.
	rng := rand.New(rand.NewPCG(42, 1))
	base := time.Now().UTC().Truncate(time.Minute).Add(-30 * time.Minute)
	want := map[string]*e2eTotal{}
	var lines [][]byte
	maxTime := base
	for i := 0; i < 400; i++ {
		model := []string{"model-a", "model-b"}[rng.IntN(2)]
		provider := map[string]string{"model-a": "openai", "model-b": "anthropic"}[model]
		at := base.Add(time.Duration(i) * 600 * time.Millisecond) // four minutes of event time
		switch {
		case i%17 == 5:
			at = at.Add(-12 * time.Second) // out of order, within the watermark lag
		case i%41 == 7:
			at = maxTime.Add(-50 * time.Second) // late, within the allowed lateness
		}
		if at.After(maxTime) {
			maxTime = at
		}
		in := int64(100 + rng.IntN(5000))
		cacheRead := int64(rng.IntN(int(in / 2)))
		cacheWrite := int64(0)
		if model == "model-b" {
			cacheWrite = int64(rng.IntN(int(in / 4)))
		}
		out := int64(1 + rng.IntN(800))
		labels := map[string]string{}
		team := "gamma"
		switch rng.IntN(4) {
		case 0:
			labels["api_key"], team = alphaKey, "alpha"
		case 1:
			labels["api_key"], team = betaKey, "beta"
		case 2:
			labels["team"], labels["project"] = "gamma", "ops"
		default:
			team = schemas.Unattributed
		}
		ev := map[string]any{
			"schema_version": "1", "event_id": fmt.Sprintf("e2e-%04d", i), "time": at.Format(time.RFC3339Nano),
			"kind": "llm.request", "source": "e2e-gateway", "provider": provider, "model": model, "status": "ok",
			"latency_ms": 100 + rng.IntN(3000),
			"usage": map[string]int64{"input_tokens": in, "cache_read_input_tokens": cacheRead,
				"cache_write_input_tokens": cacheWrite, "output_tokens": out},
		}
		if len(labels) > 0 {
			ev["labels"] = labels
		}
		b, _ := json.Marshal(ev)
		lines = append(lines, b)
		addExpected(want, model, team, in, cacheRead, cacheWrite, out)
	}
	// Duplicate submissions: the same bytes again, later, in other requests.
	for i := 0; i < 400; i += 9 {
		lines = append(lines, lines[i])
	}
	// One event far older than the late horizon: refused by ingest at once
	// (its time is out of range); produced straight to the raw topic it is
	// dead-lettered as too_late by aggregate, not counted.
	tooLate, _ := json.Marshal(map[string]any{"schema_version": "1", "event_id": "e2e-too-late",
		"time": base.Add(-72 * time.Hour).Format(time.RFC3339), "kind": "llm.request", "source": "e2e-gateway",
		"provider": "openai", "model": "model-a", "usage": map[string]int64{"input_tokens": 10, "output_tokens": 10}})

	post := func(body []byte) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.IngestURL, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+p.Token)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(msg)
	}
	for i := 0; i < len(lines); i += 25 {
		body := bytes.Join(lines[i:min(i+25, len(lines))], []byte("\n"))
		if code, msg := post(body); code != http.StatusAccepted {
			t.Fatalf("batch %d: status %d: %s", i/25, code, msg)
		}
	}
	// Malformed over HTTP: rejected with the index and field, nothing produced.
	if code, msg := post([]byte(`{"schema_version":"1","event_id":"bad-1","time":"2026-11-26T10:00:00Z","kind":"llm.request","source":"s","provider":"openai","usage":{"input_tokens":-3}}`)); code/100 != 4 || !strings.Contains(msg, "model") {
		t.Fatalf("malformed event: status %d body %s, want 4xx naming the field", code, msg)
	}
	if code, _ := post([]byte(`{"schema_version":`)); code != http.StatusBadRequest {
		t.Fatalf("broken JSON: status %d, want 400", code)
	}
	// Malformed records that bypass ingest go to the dead-letter topic.
	raw, err := kgo.NewClient(kgo.SeedBrokers(p.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.ProduceSync(ctx,
		&kgo.Record{Topic: schemas.TopicRaw, Key: []byte("x1"), Value: []byte(`{not json`)},
		&kgo.Record{Topic: schemas.TopicRaw, Key: []byte("x2"), Value: []byte(`{"schema_version":"1","event_id":"x2","kind":"llm.request"}`)},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if code, msg := post(tooLate); code != http.StatusUnprocessableEntity || !strings.Contains(msg, `"field":"time"`) {
		t.Fatalf("too-late event over HTTP: status %d: %s; want 422 naming time", code, msg)
	}
	time.Sleep(time.Second) // let the stream move on before the too-late event
	if err := raw.ProduceSync(ctx, &kgo.Record{Topic: schemas.TopicRaw, Key: []byte("e2e-too-late"), Value: tooLate}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	if err := p.Drain(2 * time.Minute); err != nil {
		t.Fatal(err)
	}

	// Totals per (model, team) from the documented view.
	rows, err := p.Store.Query(ctx, `SELECT model, team, toInt64(sum(requests)), sum(input_tokens), sum(cache_read_input_tokens), sum(output_tokens), sum(cost_usd)
FROM cost_by_window GROUP BY model, team`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*e2eTotal{}
	for rows.Next() {
		var model, team string
		var g e2eTotal
		var cost decimal.Decimal
		if err := rows.Scan(&model, &team, &g.Requests, &g.Input, &g.CacheRead, &g.Output, &cost); err != nil {
			t.Fatal(err)
		}
		g.CostPicos = cost.Shift(12).IntPart()
		if !cost.Shift(12).IsInteger() {
			t.Errorf("%s/%s: cost %s is not a whole number of pico-USD", model, team, cost)
		}
		got[model+"/"+team] = &g
	}
	rows.Close()
	if len(got) != len(want) {
		t.Errorf("got %d (model, team) groups, want %d: %v", len(got), len(want), keys(got))
	}
	for k, w := range want {
		if g := got[k]; g == nil || *g != *w {
			t.Errorf("%s: got %+v, want %+v", k, g, *w)
		}
	}

	rec, err := p.Store.Reconcile(ctx, base.Add(-time.Hour), base.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Diffs) != 0 || rec.Events != 400 {
		t.Errorf("reconcile: %d events, diffs %v", rec.Events, rec.Diffs)
	}

	// Every (window, team, model) series point has an anomaly score.
	var scored, points uint64
	if err := p.Store.QueryRow(ctx, "SELECT count() FROM cost_anomalies_final").Scan(&scored); err != nil {
		t.Fatal(err)
	}
	if err := p.Store.QueryRow(ctx, "SELECT count() FROM (SELECT DISTINCT window_start, team, model FROM cost_by_window)").Scan(&points); err != nil {
		t.Fatal(err)
	}
	if scored == 0 || scored != points {
		t.Errorf("%d anomaly scores for %d (window, team, model) points", scored, points)
		rows, err := p.Store.Query(ctx, `SELECT toString(window_start), team, model FROM (SELECT DISTINCT window_start, team, model FROM cost_by_window)
WHERE (window_start, team, model) NOT IN (SELECT window_start, team, model FROM cost_anomalies_final) ORDER BY window_start`)
		if err == nil {
			for rows.Next() {
				var w, team, model string
				_ = rows.Scan(&w, &team, &model)
				t.Logf("not scored: window %s team %s model %s", w, team, model)
			}
			rows.Close()
		}
		rows, err = p.Store.Query(ctx, `SELECT toString(window_start), count() FROM cost_anomalies_final GROUP BY window_start ORDER BY window_start`)
		if err == nil {
			for rows.Next() {
				var w string
				var n uint64
				_ = rows.Scan(&w, &n)
				t.Logf("scored: window %s: %d", w, n)
			}
			rows.Close()
		}
	}

	reasons := deadLetterReasons(t, ctx, p.Brokers, 3)
	if reasons[schemas.ReasonTooLate] != 1 || reasons[schemas.ReasonInvalidJSON]+reasons[schemas.ReasonInvalidSchema] != 2 {
		t.Errorf("dead letters by reason = %v, want 1 too_late and 2 invalid", reasons)
	}
}

func keys(m map[string]*e2eTotal) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func deadLetterReasons(t *testing.T, ctx context.Context, brokers []string, want int) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(schemas.TopicDeadLetter),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	reasons := map[string]int{}
	n := 0
	deadline := time.Now().Add(20 * time.Second)
	for n < want && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			var dl schemas.DeadLetter
			if err := json.Unmarshal(r.Value, &dl); err != nil {
				t.Errorf("dead letter is not JSON: %v", err)
				return
			}
			reasons[dl.Reason]++
			n++
		})
	}
	return reasons
}
