package aggregate

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// bigTotals are exact sums of one window and dims, in math/big.
type bigTotals struct {
	requests, latencyCount                           uint64
	input, cacheRead, output, reasoning, cost, latMs *big.Int
}

func newBigTotals() *bigTotals {
	return &bigTotals{input: new(big.Int), cacheRead: new(big.Int), output: new(big.Int), reasoning: new(big.Int), cost: new(big.Int), latMs: new(big.Int)}
}

func (b *bigTotals) String() string {
	return fmt.Sprintf("requests=%d input=%s cache_read=%s output=%s reasoning=%s cost=%s latency=%d/%s",
		b.requests, b.input, b.cacheRead, b.output, b.reasoning, b.cost, b.latencyCount, b.latMs)
}

func (b *bigTotals) equal(o *bigTotals) bool {
	return b.String() == o.String()
}

func (b *bigTotals) addEvent(e *schemas.Enriched) {
	b.requests++
	b.input.Add(b.input, big.NewInt(schemas.Get(e.Usage.InputTokens)))
	b.cacheRead.Add(b.cacheRead, big.NewInt(schemas.Get(e.Usage.CacheReadInputTokens)))
	b.output.Add(b.output, big.NewInt(schemas.Get(e.Usage.OutputTokens)))
	b.reasoning.Add(b.reasoning, big.NewInt(schemas.Get(e.Usage.ReasoningOutputTokens)))
	b.cost.Add(b.cost, big.NewInt(e.CostPicos))
	if e.LatencyMs != nil {
		b.latencyCount++
		b.latMs.Add(b.latMs, big.NewInt(*e.LatencyMs))
	}
}

func (b *bigTotals) addRow(r schemas.WindowRow) {
	b.requests += r.Requests
	b.latencyCount += r.LatencyCount
	b.input.Add(b.input, big.NewInt(r.InputTokens))
	b.cacheRead.Add(b.cacheRead, big.NewInt(r.CacheReadInputTokens))
	b.output.Add(b.output, big.NewInt(r.OutputTokens))
	b.reasoning.Add(b.reasoning, big.NewInt(r.ReasoningOutputTokens))
	b.cost.Add(b.cost, r.CostPicos.Big())
	b.latMs.Add(b.latMs, big.NewInt(r.LatencySumMs))
}

// hugeEvents returns events whose sums overflow int64 in every column:
// costs of 9e18 pico-USD, token counts and latencies of 2^62, mixed with
// small events and a second model, all in the window of t0.
func hugeEvents() []*schemas.Enriched {
	var evs []*schemas.Enriched
	for i := 0; i < 12; i++ {
		e := ev(fmt.Sprintf("h-%d", i), t0.Add(time.Duration(i)*time.Second), "m1", "t1", 1<<62, 1<<62, 9_000_000_000_000_000_000)
		e.Usage.CacheReadInputTokens = schemas.Int64(1 << 61)
		e.Usage.ReasoningOutputTokens = schemas.Int64(1 << 62)
		e.LatencyMs = schemas.Int64(1 << 62)
		switch i % 4 {
		case 1: // a small event between the huge ones
			e = ev(fmt.Sprintf("s-%d", i), t0.Add(time.Duration(i)*time.Second), "m1", "t1", 7, 3, 11)
		case 2: // no latency reported
			e.LatencyMs = nil
		case 3: // another model in the same window
			e.Model = "m2"
		}
		evs = append(evs, e)
	}
	// The largest int64 cost, twice.
	for i := 0; i < 2; i++ {
		evs = append(evs, ev(fmt.Sprintf("max-%d", i), t0.Add(20*time.Second), "m1", "t1", 0, 0, math.MaxInt64))
	}
	return evs
}

func groundTruthBig(evs []*schemas.Enriched) map[string]*bigTotals {
	out := map[string]*bigTotals{}
	for _, e := range evs {
		k := e.Model
		if out[k] == nil {
			out[k] = newBigTotals()
		}
		out[k].addEvent(e)
	}
	return out
}

func rowTotalsBig(rows []schemas.WindowRow) map[string]*bigTotals {
	out := map[string]*bigTotals{}
	for _, r := range rows {
		if out[r.Model] == nil {
			out[r.Model] = newBigTotals()
		}
		out[r.Model].addRow(r)
	}
	return out
}

// TestWindowSumsBeyondInt64 folds events whose cost, token and latency sums
// overflow int64 into one window: money is exact in one 128-bit sum; token
// and latency sums continue in further rows of the same window, each exact
// and non-negative, with their own through-offsets so that none replaces
// another in the sink; together they equal the events' sums.
func TestWindowSumsBeyondInt64(t *testing.T) {
	evs := hugeEvents()
	run := func() []schemas.WindowRow {
		e := NewEngine(testConfig())
		defer e.Close()
		e.Assign(0, schemas.PartitionHistory{}, t0)
		in := make([]Input, len(evs))
		for i, x := range evs {
			in[i] = Input{Offset: int64(100 + i), Event: x}
		}
		// Two polls, so that overflow is found across batches too.
		e.AddBatch(0, in[:5], t0, nil)
		e.AddBatch(0, in[5:], t0, nil)
		f := e.Flush(t0, true)
		e.Ack(f)
		return f.Rows
	}
	rows := run()

	want, got := groundTruthBig(evs), rowTotalsBig(rows)
	for model, w := range want {
		if !got[model].equal(w) {
			t.Errorf("%s: rows sum to\n  %s\nwant\n  %s", model, got[model], w)
		}
	}
	sink := newMemSink()
	sink.write(&Flush{Rows: rows})
	if len(sink.rows) != len(rows) {
		t.Errorf("%d rows share keys with others: the sink keeps %d of %d", len(rows)-len(sink.rows), len(sink.rows), len(rows))
	}
	perModel := map[string]int{}
	maxThrough := int64(math.MinInt64)
	for _, r := range rows {
		perModel[r.Model]++
		maxThrough = max(maxThrough, r.ThroughOffset)
		if r.InputTokens < 0 || r.CacheReadInputTokens < 0 || r.OutputTokens < 0 || r.ReasoningOutputTokens < 0 ||
			r.LatencySumMs < 0 || r.CostPicos.Sign() < 0 {
			t.Errorf("row through %d of %s has a negative sum: %+v", r.ThroughOffset, r.Model, r)
		}
		if r.Requests == 0 {
			t.Errorf("row through %d of %s is empty", r.ThroughOffset, r.Model)
		}
	}
	if perModel["m1"] < 3 {
		t.Errorf("m1 has %d rows; its token sums need at least 3", perModel["m1"])
	}
	if want := int64(100 + len(evs) - 1); maxThrough != want {
		t.Errorf("highest through_offset = %d, want the partition position %d", maxThrough, want)
	}
	// m1's cost exceeds int64 and is still one exact number per row set.
	if c := want["m1"].cost; c.IsInt64() {
		t.Fatalf("test events do not overflow int64 cost (%s)", c)
	}

	// A replay of the same records writes the same rows.
	again := run()
	if fmt.Sprint(again) != fmt.Sprint(rows) {
		t.Errorf("a replay made different rows:\n%v\nwant\n%v", again, rows)
	}
}

// TestWindowSumsBeyondInt64Restart: after the rows with continued sums are
// stored, a restart from the sink's history treats every replayed record
// as already counted.
func TestWindowSumsBeyondInt64Restart(t *testing.T) {
	evs := hugeEvents()
	in := make([]Input, len(evs))
	for i, x := range evs {
		in[i] = Input{Offset: int64(i), Event: x}
	}
	e := NewEngine(testConfig())
	defer e.Close()
	e.Assign(0, schemas.PartitionHistory{}, t0)
	e.AddBatch(0, in, t0, nil)
	sink := newMemSink()
	f := e.Flush(t0, true)
	sink.write(f)
	e.Ack(f)

	e.Assign(0, sink.history(0, int64(len(in))), t0)
	for i, o := range e.AddBatch(0, in, t0, nil) {
		if o != Duplicate && o != Replayed {
			t.Errorf("record %d after restart: %s, want it skipped", i, o)
		}
	}
	if f := e.Flush(t0, true); len(f.Rows) != 0 || len(f.Events) != 0 {
		t.Errorf("restart wrote %d rows and %d events again", len(f.Rows), len(f.Events))
	}
}

// TestScorerWindowCostsBeyondInt64: window totals past int64 pico-USD
// (about 9.2 million USD) score as the amounts they are, and the alert
// states the exact cost.
func TestScorerWindowCostsBeyondInt64(t *testing.T) {
	cfg := shortConfig()
	store, alerts := &memScores{}, &memAlerts{}
	usd20M := schemas.PicosOf(math.MaxInt64).Add(math.MaxInt64).Add(1_553_255_926_290_448_386) // 20,000,000 USD
	for i := 0; i < 50; i++ {
		cost := usd20M.Add(int64(i%3) * 1_000_000_000_000_000) // 20M USD + up to 2,000 USD
		if i >= 40 && i < 44 {
			cost = usd20M.Plus(usd20M).Plus(usd20M).Plus(usd20M).Plus(usd20M).Plus(usd20M) // 120M USD
		}
		store.costs = append(store.costs, schemas.SeriesCost{WindowStart: t0.Add(time.Duration(i) * time.Minute), Team: "t", Model: "m", CostPicos: cost})
	}
	s := NewScorer(cfg, time.Minute, store, alerts, nil, quiet)
	if _, err := s.ScoreOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(alerts.got) == 0 || alerts.got[0].Status != schemas.AlertFiring || alerts.got[0].CostUSD != "120000000" {
		t.Fatalf("alerts = %+v, want a firing one with cost_usd 120000000", alerts.got)
	}
	// The alert states the baseline the score row stores, to the picodollar.
	for _, sc := range store.scores {
		if sc.WindowStart.Equal(alerts.got[0].WindowStart) {
			if want := decimal.NewFromBigInt(sc.BaselinePicos.Big(), -12).String(); alerts.got[0].BaselineUSD != want {
				t.Errorf("alert baseline_usd %s, stored baseline %s", alerts.got[0].BaselineUSD, want)
			}
		}
	}
	for _, sc := range store.scores {
		i := int(sc.WindowStart.Sub(t0) / time.Minute)
		if b := sc.BaselinePicos.Float64(); i > 0 && (b < 1.9e19 || b > 2.5e19) {
			t.Errorf("window %d: baseline %s pico-USD, want near 20 million USD (anomalies enter it clipped)", i, sc.BaselinePicos)
		}
	}
}
