package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/schemas"
)

// hostileKind is one way a careless or hostile producer writes an event.
type hostileKind struct {
	name string
	// valid events are counted; the others must be refused at once, at
	// their index, and change nothing.
	valid bool
	// make returns the event's bytes from a valid event.
	make func(ev map[string]any, rng *rand.Rand) []byte
}

func marshal(ev map[string]any) []byte {
	b, _ := json.Marshal(ev)
	return b
}

func setUsage(ev map[string]any, k string, v any) map[string]any {
	u := map[string]any{}
	for key, val := range ev["usage"].(map[string]int64) {
		u[key] = val
	}
	u[k] = v
	ev["usage"] = u
	return ev
}

var hostileKinds = []hostileKind{
	{"plain", true, func(ev map[string]any, _ *rand.Rand) []byte { return marshal(ev) }},
	{"credential label", true, func(ev map[string]any, _ *rand.Rand) []byte {
		ev["labels"].(map[string]string)["authorization"] = "Bearer sk-hostile-secret"
		return marshal(ev)
	}},
	{"escape sequences in a label", true, func(ev map[string]any, _ *rand.Rand) []byte {
		ev["labels"].(map[string]string)["note"] = "\x1b[2J\u202e=cmd|' /C calc'!A0"
		return marshal(ev)
	}},
	{"two days ahead", false, func(ev map[string]any, _ *rand.Rand) []byte {
		ev["time"] = time.Now().UTC().Add(48 * time.Hour).Format(time.RFC3339Nano)
		return marshal(ev)
	}},
	{"thirty hours old", false, func(ev map[string]any, _ *rand.Rand) []byte {
		ev["time"] = time.Now().UTC().Add(-30 * time.Hour).Format(time.RFC3339Nano)
		return marshal(ev)
	}},
	{"year 2200", false, func(ev map[string]any, _ *rand.Rand) []byte {
		ev["time"] = "2200-12-31T00:00:00Z"
		return marshal(ev)
	}},
	{"tokens past the bound", false, func(ev map[string]any, _ *rand.Rand) []byte {
		return marshal(setUsage(ev, "output_tokens", int64(schemas.MaxTokens)+1))
	}},
	{"negative tokens", false, func(ev map[string]any, _ *rand.Rand) []byte {
		return marshal(setUsage(ev, "input_tokens", -5))
	}},
	{"absurd latency", false, func(ev map[string]any, _ *rand.Rand) []byte {
		ev["latency_ms"] = int64(1) << 60
		return marshal(ev)
	}},
	{"provider cost of millions", false, func(ev map[string]any, _ *rand.Rand) []byte {
		ev["provider_cost_usd"] = "9300000"
		return marshal(ev)
	}},
	{"duplicate key", false, func(ev map[string]any, _ *rand.Rand) []byte {
		b := marshal(ev)
		return bytes.Replace(b, []byte(`"model":`), []byte(`"model":"other","model":`), 1)
	}},
	{"case-variant key", false, func(ev map[string]any, _ *rand.Rand) []byte {
		b := marshal(ev)
		return bytes.Replace(b, []byte(`"model":`), []byte(`"MODEL":"other","model":`), 1)
	}},
	{"invalid UTF-8", false, func(ev map[string]any, _ *rand.Rand) []byte {
		b := marshal(ev)
		return bytes.Replace(b, []byte(`"source":"`), []byte("\"source\":\"\xff\xfe"), 1)
	}},
	{"missing model", false, func(ev map[string]any, _ *rand.Rand) []byte {
		delete(ev, "model")
		return marshal(ev)
	}},
	{"unknown field", false, func(ev map[string]any, _ *rand.Rand) []byte {
		ev["cost"] = 0
		return marshal(ev)
	}},
}

// TestHostileInputKeepsValidTotals posts random batches that mix valid
// events with every kind of careless or hostile one (in partial mode, so
// that the valid ones of a batch are accepted), resends some valid ones,
// and requires: every refused event is named at its index at once, every
// accepted one is counted exactly once, the totals of cost_by_window equal
// those of the valid events alone (costs computed here, not by the
// pricing code), and nothing in the views is negative.
func TestHostileInputKeepsValidTotals(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs ClickHouse")
	}
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { hostileRun(t, seed) })
	}
}

func hostileRun(t *testing.T, seed uint64) {
	cfg, token := testConfig(t, nil, 3)
	cfg.Enrich.OwnersPath = writeTestFile(t, "owners.yaml", "trust_event_labels: true\n")
	cfg.Aggregate.ScoreAnomalies = false
	p, ctx := startPipeline(t, cfg, token, slog.New(slog.NewTextHandler(io.Discard, nil)))

	rng := rand.New(rand.NewPCG(seed, 77))
	now := time.Now().UTC()
	want := map[string]*e2eTotal{}
	var valid [][]byte
	id := 0
	post := func(lines [][]byte) Response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.IngestURL+"?partial=true", bytes.NewReader(bytes.Join(lines, []byte("\n"))))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r Response
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("answer %s: %v", body, err)
		}
		return r
	}
	for batch := 0; batch < 30; batch++ {
		var lines [][]byte
		var kinds []hostileKind
		for range 1 + rng.IntN(40) {
			id++
			model := []string{"model-a", "model-b"}[rng.IntN(2)]
			team := []string{"search", "chat", "ops"}[rng.IntN(3)]
			in, cacheRead, out := int64(1+rng.IntN(9000)), int64(0), int64(rng.IntN(2000))
			cacheRead = int64(rng.IntN(int(in)))
			ev := map[string]any{
				"schema_version": "1", "event_id": fmt.Sprintf("hostile-%d-%05d", seed, id),
				"time": now.Add(-time.Duration(rng.IntN(240)) * time.Second).Format(time.RFC3339Nano),
				"kind": "llm.request", "source": "hostile-gw", "status": "ok",
				"provider": map[string]string{"model-a": "openai", "model-b": "anthropic"}[model], "model": model,
				"labels": map[string]string{"team": team},
				"usage":  map[string]int64{"input_tokens": in, "cache_read_input_tokens": cacheRead, "output_tokens": out},
			}
			k := hostileKinds[0]
			if rng.IntN(3) > 0 {
				k = hostileKinds[rng.IntN(len(hostileKinds))]
			}
			lines = append(lines, k.make(ev, rng))
			kinds = append(kinds, k)
			if k.valid {
				addExpected(want, model, team, in, cacheRead, 0, out)
				valid = append(valid, lines[len(lines)-1])
			}
		}
		// Resent copies of earlier valid events count once.
		for range rng.IntN(4) {
			if len(valid) > 0 {
				lines = append(lines, valid[rng.IntN(len(valid))])
				kinds = append(kinds, hostileKinds[0])
			}
		}
		r := post(lines)
		refused := map[int]bool{}
		for _, e := range r.Errors {
			refused[e.Index] = true
		}
		for i, k := range kinds {
			if refused[i] == k.valid {
				t.Errorf("batch %d index %d (%s): refused=%v, want %v; errors %+v", batch, i, k.name, refused[i], !k.valid, r.Errors)
			}
		}
	}
	if err := p.Drain(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	got := layoutTotals(t, ctx, p.Store)
	if len(got) != len(want) {
		t.Errorf("%d (model, team) groups, want %d: %v", len(got), len(want), keys(got))
	}
	for k, w := range want {
		if g := got[k]; g == nil || *g != *w {
			t.Errorf("%s: got %+v, want %+v", k, g, *w)
		}
	}
	var minCost decimal.Decimal
	var minTokens int64
	if err := p.Store.QueryRow(ctx, `SELECT min(cost_usd), least(min(input_tokens), least(min(output_tokens), min(cache_read_input_tokens))) FROM cost_by_window`).Scan(&minCost, &minTokens); err != nil {
		t.Fatal(err)
	}
	if minCost.Sign() < 0 || minTokens < 0 {
		t.Errorf("cost_by_window holds negative values: min cost %s, min tokens %d", minCost, minTokens)
	}
	rec, err := p.Store.Reconcile(ctx, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Diffs) != 0 {
		t.Errorf("reconcile: %v", rec.Diffs)
	}
	var cost big.Int
	for _, w := range want {
		cost.Add(&cost, big.NewInt(w.CostPicos))
	}
	if !decimal.NewFromBigInt(&cost, -12).Equal(rec.CostUSD) {
		t.Errorf("reconciled cost %s, want %s", rec.CostUSD, decimal.NewFromBigInt(&cost, -12))
	}
}

// Response is the part of ingest's answer this test reads.
type Response = ingest.Response
