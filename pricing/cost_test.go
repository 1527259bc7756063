package pricing

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

// The events priced here are testenv's, which other packages' tests share.
var (
	testTime = testenv.EventTime
	usage    = testenv.Usage
	llmEvent = testenv.LLMEvent
)

func TestPriceLLM(t *testing.T) {
	c := mustCatalog(t, "testdata/catalog.yaml")
	type line struct {
		meter string
		qty   int64
		price string
		picos int64
	}
	cases := []struct {
		name      string
		ev        *schemas.Event
		priced    bool
		costPicos int64
		lines     []line
	}{
		{
			name:   "one token at 0.0375 per 1M is 37,500 picos",
			ev:     llmEvent("testprov", "cheap", usage(1, 0, 0, 0, 0)),
			priced: true, costPicos: 37_500,
			lines: []line{{MeterInput, 1, "0.0375", 37_500}},
		},
		{
			name:   "1,000,001 tokens at 0.0375 per 1M is exact",
			ev:     llmEvent("testprov", "cheap", usage(1_000_001, 0, 0, 0, 0)),
			priced: true, costPicos: 37_500_037_500,
			lines: []line{{MeterInput, 1_000_001, "0.0375", 37_500_037_500}},
		},
		{
			name:   "every meter, cache and reasoning as subsets",
			ev:     llmEvent("testprov", "full", usage(1000, 600, 100, 500, 200)),
			priced: true,
			// 300×3e6 + 600×0.3e6 + 100×3.75e6 + 300×15e6 + 200×20e6
			costPicos: 900_000_000 + 180_000_000 + 375_000_000 + 4_500_000_000 + 4_000_000_000,
			lines: []line{
				{MeterInput, 300, "3", 900_000_000},
				{MeterCacheReadInput, 600, "0.3", 180_000_000},
				{MeterCacheWriteInput, 100, "3.75", 375_000_000},
				{MeterOutput, 300, "15", 4_500_000_000},
				{MeterReasoningOutput, 200, "20", 4_000_000_000},
			},
		},
		{
			name:   "absent cache and reasoning rates fall back to input and output",
			ev:     llmEvent("testprov", "cheap", usage(10, 4, 2, 10, 3)),
			priced: true, costPicos: 4*37_500 + 4*37_500 + 2*37_500 + 7*150_000 + 3*150_000,
			lines: []line{
				{MeterInput, 4, "0.0375", 150_000},
				{MeterCacheReadInput, 4, "0.0375", 150_000},
				{MeterCacheWriteInput, 2, "0.0375", 75_000},
				{MeterOutput, 7, "0.15", 1_050_000},
				{MeterReasoningOutput, 3, "0.15", 450_000},
			},
		},
		{
			name:   "all input cached",
			ev:     llmEvent("google", "gemini-x", usage(1000, 1000, 0, 0, 0)),
			priced: true, costPicos: 30_000_000,
			lines: []line{{MeterCacheReadInput, 1000, "0.03", 30_000_000}},
		},
		{
			name:   "zero tokens is priced at zero",
			ev:     llmEvent("testprov", "full", usage(0, 0, 0, 0, 0)),
			priced: true,
		},
		{
			name:   "unreported counts are zero",
			ev:     llmEvent("testprov", "full", &schemas.Usage{InputTokens: schemas.Int64(2)}),
			priced: true, costPicos: 6_000_000,
			lines: []line{{MeterInput, 2, "3", 6_000_000}},
		},
		{
			name: "unknown model is unpriced",
			ev:   llmEvent("testprov", "mystery", usage(10, 0, 0, 10, 0)),
		},
		{
			name: "no usage on a successful request is unpriced",
			ev:   llmEvent("testprov", "full", nil),
		},
		{
			name: "no usage on a failed request costs nothing",
			ev: func() *schemas.Event {
				e := llmEvent("testprov", "full", nil)
				e.Status = schemas.StatusError
				return e
			}(),
			priced: true,
		},
		{
			name: "cache larger than input is unpriced, not guessed",
			ev:   llmEvent("testprov", "full", usage(10, 8, 8, 0, 0)),
		},
		{
			name: "reasoning larger than output is unpriced",
			ev:   llmEvent("testprov", "full", usage(0, 0, 0, 1, 2)),
		},
		{
			name: "cost past the int64 range is unpriced",
			ev:   llmEvent("testprov", "opus", usage(0, 0, 0, 1<<40, 0)),
		},
		{
			name:   "largest count at a cheap rate fits",
			ev:     llmEvent("testprov", "cheap", usage(1<<40, 0, 0, 0, 0)),
			priced: true, costPicos: (1 << 40) * 37_500,
			lines: []line{{MeterInput, 1 << 40, "0.0375", (1 << 40) * 37_500}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := c.Price(tc.ev)
			if q.Priced != tc.priced || q.CostPicos != tc.costPicos {
				t.Fatalf("priced=%v cost=%d, want priced=%v cost=%d", q.Priced, q.CostPicos, tc.priced, tc.costPicos)
			}
			if len(q.Lines) != len(tc.lines) {
				t.Fatalf("got %d lines %+v, want %d", len(q.Lines), q.Lines, len(tc.lines))
			}
			var sum int64
			for i, l := range tc.lines {
				got := q.Lines[i]
				if got.Meter != l.meter || got.Quantity != l.qty || got.UnitPrice != l.price || got.CostPicos != l.picos {
					t.Errorf("line %d = %+v, want %+v", i, got, l)
				}
				sum += got.CostPicos
			}
			if sum != q.CostPicos {
				t.Errorf("lines sum to %d, total is %d", sum, q.CostPicos)
			}
		})
	}
}

// TestCostAdditive is a property test: adding k tokens of one kind (with the
// totals that include it) adds exactly k × that kind's rate. That makes cost
// monotone in each count and shows that no token is counted twice.
func TestCostAdditive(t *testing.T) {
	c := mustCatalog(t, "testdata/catalog.yaml")
	rates := map[string]int64{ // picos per token of test/full
		MeterInput: 3_000_000, MeterCacheReadInput: 300_000, MeterCacheWriteInput: 3_750_000,
		MeterOutput: 15_000_000, MeterReasoningOutput: 20_000_000,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		read, write, reason := rng.Int64N(1e6), rng.Int64N(1e6), rng.Int64N(1e6)
		in := read + write + rng.Int64N(1e6)
		out := reason + rng.Int64N(1e6)
		k := rng.Int64N(1e4) + 1
		base := c.Price(llmEvent("testprov", "full", usage(in, read, write, out, reason)))
		for meter, u := range map[string]*schemas.Usage{
			MeterInput:           usage(in+k, read, write, out, reason),
			MeterCacheReadInput:  usage(in+k, read+k, write, out, reason),
			MeterCacheWriteInput: usage(in+k, read, write+k, out, reason),
			MeterOutput:          usage(in, read, write, out+k, reason),
			MeterReasoningOutput: usage(in, read, write, out+k, reason+k),
		} {
			got := c.Price(llmEvent("testprov", "full", u))
			if !base.Priced || !got.Priced {
				t.Fatalf("unpriced: %+v %+v", base, got)
			}
			if d := got.CostPicos - base.CostPicos; d != k*rates[meter] {
				t.Fatalf("adding %d %s tokens to %+v changed cost by %d, want %d", k, meter, *u, d, k*rates[meter])
			}
			var qty int64
			for _, l := range got.Lines {
				qty += l.Quantity
			}
			if want := schemas.Get(u.InputTokens) + schemas.Get(u.OutputTokens); qty != want {
				t.Fatalf("line quantities sum to %d, want input+output = %d", qty, want)
			}
		}
	}
}

func TestPriceGPU(t *testing.T) {
	c := mustCatalog(t, "testdata/catalog.yaml")
	gpu := func(model string, secs float64) *schemas.Event {
		return &schemas.Event{
			SchemaVersion: schemas.SchemaVersion, EventID: "g1", Time: testTime, Kind: schemas.KindGPUUsage, Source: "probe",
			GPU: &schemas.GPUUsage{GPUModel: model, IntervalSeconds: 60, AllocatedSeconds: secs},
		}
	}
	cases := []struct {
		name       string
		ev         *schemas.Event
		priced     bool
		costPicos  int64
		microhours int64
	}{
		{"one hour", gpu("H100-SXM-80GB", 3600), true, 6_880_000_000_000, 1_000_000},
		{"model name is case-insensitive", gpu("h100-sxm-80gb", 3600), true, 6_880_000_000_000, 1_000_000},
		{"one second rounds to the nearest pico", gpu("H100-SXM-80GB", 1), true, 1_911_111_111, 278},
		{"0.78 of a pico rounds up", gpu("A100", 1), true, 277_777_778, 278},
		{"fractional seconds", gpu("A100", 0.5), true, 138_888_889, 139},
		{"exact half rounds to even (down)", gpu("tiny", 0.0018), true, 0, 0},
		{"exact half rounds to even (up)", gpu("tiny", 0.0054), true, 2, 2},
		{"zero seconds", gpu("A100", 0), true, 0, 0},
		{"unknown GPU", gpu("TPU", 10), false, 0, 0},
		{"absurd seconds", gpu("A100", 1e15), false, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := c.Price(tc.ev)
			if q.Priced != tc.priced || q.CostPicos != tc.costPicos {
				t.Fatalf("priced=%v cost=%d, want priced=%v cost=%d", q.Priced, q.CostPicos, tc.priced, tc.costPicos)
			}
			if tc.microhours != 0 {
				if len(q.Lines) != 1 || q.Lines[0].Quantity != tc.microhours || q.Lines[0].Meter != MeterGPUMicrohours {
					t.Errorf("lines = %+v, want one %s line of %d", q.Lines, MeterGPUMicrohours, tc.microhours)
				}
			}
		})
	}
}

func TestMulPicos(t *testing.T) {
	for _, tc := range []struct {
		q, p int64
		want int64
		ok   bool
	}{
		{0, math.MaxInt64, 0, true},
		{1 << 40, 8_388_607, (1 << 40) * 8_388_607, true},
		{1 << 40, 8_388_608, 0, false},
		{math.MaxInt64, 1, math.MaxInt64, true},
	} {
		got, ok := mulPicos(tc.q, tc.p)
		if got != tc.want || ok != tc.ok {
			t.Errorf("mulPicos(%d, %d) = %d, %v; want %d, %v", tc.q, tc.p, got, ok, tc.want, tc.ok)
		}
	}
}
