package pricing

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/internal/yamlstrict"
	"github.com/aivis-dev/aivis/schemas"
)

var update = flag.Bool("update", false, "rewrite testdata/litellm/expected.yaml")

type wantLine struct {
	meter string
	qty   int64
	price string
	picos int64
}

func checkQuote(t *testing.T, q Quote, cost int64, lines []wantLine) {
	t.Helper()
	if !q.Priced || q.CostPicos != cost {
		t.Fatalf("priced=%v cost=%d, want cost %d (lines %+v)", q.Priced, q.CostPicos, cost, q.Lines)
	}
	if lines != nil && len(q.Lines) != len(lines) {
		t.Fatalf("got lines %+v, want %+v", q.Lines, lines)
	}
	var sum int64
	for i, l := range q.Lines {
		sum += l.CostPicos
		if lines == nil {
			continue
		}
		w := lines[i]
		if l.Meter != w.meter || l.Quantity != w.qty || (w.price != "" && l.UnitPrice != w.price) || l.CostPicos != w.picos {
			t.Errorf("line %d = %+v, want %+v", i, l, w)
		}
	}
	if sum != q.CostPicos {
		t.Errorf("lines sum to %d, cost is %d", sum, q.CostPicos)
	}
}

// cacheyUsage: 10,000 input of which 2,000 cache reads, 1,000 5m writes and
// 500 1h writes (total writes left unreported); 100 output.
func cacheyUsage() *schemas.Usage {
	return &schemas.Usage{
		InputTokens: schemas.Int64(10_000), CacheReadInputTokens: schemas.Int64(2000),
		CacheWrite5mInputTokens: schemas.Int64(1000), CacheWrite1hInputTokens: schemas.Int64(500),
		OutputTokens: schemas.Int64(100),
	}
}

func TestPriceGoldenCases(t *testing.T) {
	c := mustCatalog(t, "testdata/catalog.yaml")
	withTier := func(tier string) *schemas.Event {
		ev := llmEvent("testprov", "cachey", cacheyUsage())
		ev.ServiceTier = tier
		return ev
	}
	cases := []struct {
		name  string
		ev    *schemas.Event
		team  string
		cost  int64
		lines []wantLine
	}{
		{
			// 1,500 input > 1,000: every token at the tier; cache_read keeps
			// its explicit base rate because the tier does not set it.
			name: "whole_request tier", ev: llmEvent("testprov", "tiered-whole", usage(1500, 300, 0, 100, 0)),
			cost: 1200*3_000_000 + 300*100_000 + 100*4_000_000,
			lines: []wantLine{
				{"input@long", 1200, "3", 3_600_000_000},
				{"cache_read_input@long", 300, "0.1", 30_000_000},
				{"output@long", 100, "4", 400_000_000},
			},
		},
		{
			// The first 1,000 input tokens (300 cached, then 700 uncached)
			// stay at base rates; the other 500 pay the tier's input rate;
			// output is not in the input family and stays at base.
			name: "graduated tier", ev: llmEvent("testprov", "tiered-graduated", usage(1500, 300, 0, 100, 0)),
			cost: 700*1_000_000 + 500*3_000_000 + 300*100_000 + 100*2_000_000,
			lines: []wantLine{
				{"input", 700, "1", 700_000_000},
				{"input@long", 500, "3", 1_500_000_000},
				{"cache_read_input", 300, "0.1", 30_000_000},
				{"output", 100, "2", 200_000_000},
			},
		},
		{
			name: "whole_request at the threshold (strict gt) uses base", ev: llmEvent("testprov", "tiered-whole", usage(1000, 300, 0, 100, 0)),
			cost: 700*1_000_000 + 300*100_000 + 100*2_000_000,
		},
		{
			name: "graduated at the threshold uses base", ev: llmEvent("testprov", "tiered-graduated", usage(1000, 300, 0, 100, 0)),
			cost: 700*1_000_000 + 300*100_000 + 100*2_000_000,
		},
		{
			name: "cache writes 5m and 1h", ev: withTier(""),
			cost: 28_350_000_000,
			lines: []wantLine{
				{MeterInput, 6500, "3", 19_500_000_000},
				{MeterCacheReadInput, 2000, "0.3", 600_000_000},
				{MeterCacheWriteInput5m, 1000, "3.75", 3_750_000_000},
				{MeterCacheWriteInput1h, 500, "6", 3_000_000_000},
				{MeterOutput, 100, "15", 1_500_000_000},
			},
		},
		{
			name: "batch halves every token rate (tier name is case-insensitive)", ev: withTier("Batch"),
			cost: 14_175_000_000,
			lines: []wantLine{
				{MeterInput, 6500, "1.5", 9_750_000_000},
				{MeterCacheReadInput, 2000, "0.15", 300_000_000},
				{MeterCacheWriteInput5m, 1000, "1.875", 1_875_000_000},
				{MeterCacheWriteInput1h, 500, "3", 1_500_000_000},
				{MeterOutput, 100, "7.5", 750_000_000},
			},
		},
		{
			name: "priority replaces the rates it names", ev: withTier("priority"),
			cost: 6500*5_000_000 + 600_000_000 + 3_750_000_000 + 3_000_000_000 + 100*25_000_000,
		},
		{
			name: "unknown service tier uses standard rates", ev: withTier("scale"),
			cost: 28_350_000_000,
		},
		{
			name: "audio and rejected predictions", ev: llmEvent("testprov", "cachey", &schemas.Usage{
				InputTokens: schemas.Int64(100), InputAudioTokens: schemas.Int64(40),
				OutputTokens: schemas.Int64(50), OutputAudioTokens: schemas.Int64(10), RejectedPredictionTokens: schemas.Int64(5),
			}),
			cost: 60*3_000_000 + 40*40_000_000 + 35*15_000_000 + 10*80_000_000 + 5*15_000_000,
			lines: []wantLine{
				{MeterInput, 60, "3", 180_000_000},
				{MeterInputAudio, 40, "40", 1_600_000_000},
				{MeterOutput, 35, "15", 525_000_000},
				{MeterOutputAudio, 10, "80", 800_000_000},
				{MeterRejectedPrediction, 5, "15", 75_000_000},
			},
		},
		{
			name: "per-call fees", ev: llmEvent("testprov", "cachey", &schemas.Usage{
				InputTokens: schemas.Int64(0), ServerToolCalls: map[string]int64{"web_search": 3, "code_exec": 1},
			}),
			cost:  30_000_000_000,
			lines: []wantLine{{"call:web_search", 3, "10000", 30_000_000_000}},
		},
		{
			name: "contract discount", ev: withTier(""), team: "research",
			cost: 28_350_000_000 - 4_252_500_000,
		},
		{
			name: "contract rates", ev: withTier(""), team: "ml",
			cost: 28_350_000_000 - 6500*1_000_000,
		},
		{
			name: "no contract for another team", ev: withTier(""), team: "sales",
			cost: 28_350_000_000,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkQuote(t, c.PriceFor(tc.ev, tc.team), tc.cost, tc.lines)
		})
	}
}

func TestPriceContractRecord(t *testing.T) {
	c := mustCatalog(t, "testdata/catalog.yaml")
	q := c.PriceFor(llmEvent("testprov", "cachey", cacheyUsage()), "research")
	if q.Contract != "research" || q.ListCostPicos != 28_350_000_000 || q.Source != schemas.CostSourceCatalog {
		t.Errorf("quote %+v", q)
	}
	last := q.Lines[len(q.Lines)-1]
	if last.Meter != MeterContractDiscount || last.CostPicos != -4_252_500_000 || last.UnitPrice != "0.15" {
		t.Errorf("discount line %+v", last)
	}
	q = c.PriceFor(llmEvent("testprov", "cachey", cacheyUsage()), "ml")
	if q.Contract != "ml-2026" || q.Lines[len(q.Lines)-1].Meter != MeterContractRates {
		t.Errorf("contract rates quote %+v", q)
	}
}

func TestPriceUnpricedCallWarns(t *testing.T) {
	c := mustCatalog(t, "testdata/catalog.yaml")
	q := c.Price(llmEvent("testprov", "cachey", &schemas.Usage{ServerToolCalls: map[string]int64{"code_exec": 2}}))
	if !q.Priced || len(q.Warnings) != 1 || !strings.HasPrefix(q.Warnings[0], WarnUnpricedCall+":") {
		t.Errorf("quote %+v", q)
	}
}

func TestProviderCostWins(t *testing.T) {
	c := mustCatalog(t, "testdata/catalog.yaml")
	cases := []struct {
		name, model, cost string
		team              string
		want              int64
		source            string
		warn              string
		lines             int
	}{
		{"wins over catalog, catalog lines kept", "cachey", "0.0285", "", 28_500_000_000, schemas.CostSourceProvider, "", 6},
		{"beyond the 2% tolerance it still wins, with a warning", "cachey", "0.03", "", 30_000_000_000, schemas.CostSourceProvider, WarnProviderCostMismatch, 6},
		{"below the catalog beyond the tolerance", "cachey", "0.0277", "", 27_700_000_000, schemas.CostSourceProvider, WarnProviderCostMismatch, 6},
		{"contracts do not apply", "cachey", "0.03", "research", 30_000_000_000, schemas.CostSourceProvider, WarnProviderCostMismatch, 6},
		{"unknown model", "mystery", "1.5", "", 1_500_000_000_000, schemas.CostSourceProvider, "", 1},
		{"13 decimals round half even down", "mystery", "0.0000000000005", "", 0, schemas.CostSourceProvider, WarnProviderCostRounded, 1},
		{"13 decimals round half even up", "mystery", "0.0000000000015", "", 2, schemas.CostSourceProvider, WarnProviderCostRounded, 1},
		{"unusable value is ignored", "cachey", "abc", "", 28_350_000_000, schemas.CostSourceCatalog, WarnProviderCostIgnored, 5},
		{"too large is ignored", "cachey", "99999999", "", 28_350_000_000, schemas.CostSourceCatalog, WarnProviderCostIgnored, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := llmEvent("testprov", tc.model, cacheyUsage())
			ev.ProviderCostUSD = tc.cost
			q := c.PriceFor(ev, tc.team)
			checkQuote(t, q, tc.want, nil)
			if q.Source != tc.source || len(q.Lines) != tc.lines {
				t.Errorf("source %q lines %+v", q.Source, q.Lines)
			}
			if tc.warn == "" && len(q.Warnings) != 0 || tc.warn != "" && (len(q.Warnings) != 1 || !strings.HasPrefix(q.Warnings[0], tc.warn)) {
				t.Errorf("warnings %q, want %q", q.Warnings, tc.warn)
			}
		})
	}
}

func TestParseCatalogModifierErrors(t *testing.T) {
	const head = "catalog_version: v\ncurrency: USD\nmodels:\n  - id: a/b\n    provider: p\n    match: {models: [b]}\n    effective_from: 2025-01-01T00:00:00Z\n"
	cases := []struct{ name, doc, want string }{
		{"inexact multiply", head + "    rates: {input: \"0.000001\", output: \"1\"}\n    service_tiers: {batch: {multiply: \"0.5\"}}\n", "service_tiers.batch.multiply: 0.5 × input"},
		{"negative multiply", head + "    rates: {input: \"1\", output: \"1\"}\n    service_tiers: {batch: {multiply: \"-1\"}}\n", "must be between 0 and 100"},
		{"graduated lt", head + "    rates: {input: \"1\", output: \"1\"}\n    tiers: [{name: t, when: {field: input_tokens, op: lt, value: 5}, mode: graduated}]\n", "graduated needs op gt or gte"},
		{"graduated without family", head + "    rates: {input: \"1\", output: \"1\"}\n    tiers: [{name: t, when: {field: tool_input_tokens, op: gt, value: 5}, mode: graduated}]\n", "has no meters of its own"},
		{"unknown field", head + "    rates: {input: \"1\", output: \"1\"}\n    tiers: [{name: t, when: {field: prompt, op: gt, value: 5}, mode: whole_request}]\n", "tiers[0].when.field"},
		{"bad mode", head + "    rates: {input: \"1\", output: \"1\"}\n    tiers: [{name: t, when: {field: input_tokens, op: gt, value: 5}, mode: sliced}]\n", "must be whole_request or graduated"},
		{"bad tier rate", head + "    rates: {input: \"1\", output: \"1\"}\n    tiers: [{name: t, when: {field: input_tokens, op: gt, value: 5}, mode: whole_request, rates: {output: \"x\"}}]\n", "tiers[0].rates.output"},
		{"per-call decimals", head + "    rates: {input: \"1\", output: \"1\"}\n    per_call: {web_search: \"0.0000000000001\"}\n", "per_call.web_search"},
		{"contract without terms", head + "    rates: {input: \"1\", output: \"1\"}\ncontracts: [{team: x}]\n", "contracts[0]: needs a discount or rates"},
		{"contract discount above 1", head + "    rates: {input: \"1\", output: \"1\"}\ncontracts: [{team: x, discount: \"1.5\"}]\n", "between 0 and 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCatalog([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// fullUsage builds a usage with every token field reported.
type fullUsage struct {
	in, read, write, w5, w1, audioIn, tool, out, reason, audioOut, rejected, accepted, calls int64
}

func (f fullUsage) usage() *schemas.Usage {
	u := &schemas.Usage{
		InputTokens: schemas.Int64(f.in), CacheReadInputTokens: schemas.Int64(f.read),
		CacheWriteInputTokens: schemas.Int64(f.write), CacheWrite5mInputTokens: schemas.Int64(f.w5),
		CacheWrite1hInputTokens: schemas.Int64(f.w1), InputAudioTokens: schemas.Int64(f.audioIn),
		ToolInputTokens: schemas.Int64(f.tool), OutputTokens: schemas.Int64(f.out),
		ReasoningOutputTokens: schemas.Int64(f.reason), OutputAudioTokens: schemas.Int64(f.audioOut),
		RejectedPredictionTokens: schemas.Int64(f.rejected), AcceptedPredictionTokens: schemas.Int64(f.accepted),
	}
	if f.calls > 0 {
		u.ServerToolCalls = map[string]int64{"web_search": f.calls, "web_fetch": f.calls, "google_search": f.calls}
	}
	return u
}

// TestCostMonotoneAllEntries is a property test over every default
// catalog entry and service tier: one more token of any kind (with the
// totals that include it) or one more call never lowers the cost; token
// meter quantities sum to input + output; lines sum to the cost.
func TestCostMonotoneAllEntries(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	var f catalogFile
	if err := yamlstrict.Decode(defaultCatalogYAML, &f); err != nil {
		t.Fatal(err)
	}
	tokenMeter := map[string]bool{}
	for _, m := range meterNames {
		tokenMeter[m] = true
	}
	rng := rand.New(rand.NewPCG(3, 4))
	steps := []func(f *fullUsage, k int64){
		func(f *fullUsage, k int64) { f.in += k },
		func(f *fullUsage, k int64) { f.in += k; f.read += k },
		func(f *fullUsage, k int64) { f.in += k; f.write += k },
		func(f *fullUsage, k int64) { f.in += k; f.write += k; f.w5 += k },
		func(f *fullUsage, k int64) { f.in += k; f.write += k; f.w1 += k },
		func(f *fullUsage, k int64) { f.in += k; f.audioIn += k },
		func(f *fullUsage, k int64) { f.in += k; f.tool += k },
		func(f *fullUsage, k int64) { f.out += k },
		func(f *fullUsage, k int64) { f.out += k; f.reason += k },
		func(f *fullUsage, k int64) { f.out += k; f.audioOut += k },
		func(f *fullUsage, k int64) { f.out += k; f.rejected += k },
		func(f *fullUsage, k int64) { f.out += k; f.accepted += k },
		func(f *fullUsage, k int64) { f.calls++ },
	}
	for _, m := range f.Models {
		name := ""
		if len(m.Match.Models) > 0 {
			name = m.Match.Models[0]
		} else if len(m.Match.Aliases) > 0 {
			name = m.Match.Aliases[0]
		}
		for _, tier := range []string{"", "batch", "flex", "priority"} {
			for i := 0; i < 40; i++ {
				var fu fullUsage
				fu.read, fu.w5, fu.w1 = rng.Int64N(150_000), rng.Int64N(20_000), rng.Int64N(20_000)
				fu.write = fu.w5 + fu.w1 + rng.Int64N(20_000)
				fu.audioIn, fu.tool = rng.Int64N(10_000), rng.Int64N(10_000)
				fu.in = fu.read + fu.write + fu.audioIn + fu.tool + rng.Int64N(150_000)
				fu.reason, fu.audioOut, fu.rejected = rng.Int64N(5000), rng.Int64N(5000), rng.Int64N(5000)
				fu.accepted = rng.Int64N(5000)
				fu.out = fu.reason + fu.audioOut + fu.rejected + fu.accepted + rng.Int64N(5000)
				fu.calls = rng.Int64N(3)
				ev := llmEvent(m.Provider, name, fu.usage())
				ev.Time = testTime.AddDate(2, 0, 0)
				ev.ServiceTier = tier
				base := c.Price(ev)
				if !base.Priced {
					t.Fatalf("%s (%s): unpriced for %+v", m.ID, name, fu)
				}
				checkMeters(t, m.ID, base, fu, tokenMeter)
				step := rng.IntN(len(steps))
				k := rng.Int64N(60_000) + 1
				next := fu
				steps[step](&next, k)
				ev.Usage = next.usage()
				got := c.Price(ev)
				if !got.Priced || got.CostPicos < base.CostPicos {
					t.Fatalf("%s tier %q: step %d by %d lowered cost %d → %d\n%+v\n%+v", m.ID, tier, step, k, base.CostPicos, got.CostPicos, fu, next)
				}
				checkMeters(t, m.ID, got, next, tokenMeter)
			}
		}
	}
}

func checkMeters(t *testing.T, id string, q Quote, fu fullUsage, tokenMeter map[string]bool) {
	t.Helper()
	var qty, sum int64
	for _, l := range q.Lines {
		sum += l.CostPicos
		meter, _, _ := strings.Cut(l.Meter, "@")
		if tokenMeter[meter] {
			qty += l.Quantity
		}
	}
	if qty != fu.in+fu.out || sum != q.CostPicos {
		t.Fatalf("%s: token quantities %d (want %d), lines sum %d (cost %d): %+v", id, qty, fu.in+fu.out, sum, q.CostPicos, q.Lines)
	}
}

func TestImportLiteLLM(t *testing.T) {
	in, err := os.ReadFile("testdata/litellm/model_prices.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ImportLiteLLM(bytes.NewReader(in), "v1.0-test")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Golden(t, "testdata/litellm/expected.yaml", got, *update)
	c, err := ParseCatalog(got)
	if err != nil {
		t.Fatal(err)
	}
	// claude-sonnet-4-5: 3/15, above 200k whole_request 6/22.5, batch 0.5.
	ev := llmEvent("anthropic", "claude-sonnet-4-5", usage(250_000, 0, 0, 1000, 0))
	checkQuote(t, c.Price(ev), 250_000*6_000_000+1000*22_500_000, nil)
	ev.ServiceTier = "batch"
	checkQuote(t, c.Price(ev), (250_000*6_000_000+1000*22_500_000)/2, nil)
	ev = llmEvent("aws.bedrock", "us.anthropic.claude-haiku-4-5-20251001-v1:0", &schemas.Usage{
		InputTokens: schemas.Int64(1000), CacheWrite1hInputTokens: schemas.Int64(100), CacheWrite5mInputTokens: schemas.Int64(100),
	})
	checkQuote(t, c.Price(ev), 800*1_000_000+100*1_250_000+100*2_000_000, nil)
	// Vertex's provider name reaches LiteLLM's vertex_ai-language-models
	// prices: 1.25/10 per 1M.
	ev = llmEvent("gcp.vertex_ai", "gemini-2.5-pro", usage(1000, 0, 0, 100, 0))
	checkQuote(t, c.Price(ev), 1000*1_250_000+100*10_000_000, nil)
	// Embeddings import with input only: 0.02 per 1M.
	ev = llmEvent("openai", "text-embedding-3-small", usage(1000, 0, 0, 0, 0))
	checkQuote(t, c.Price(ev), 1000*20_000, nil)
}

func FuzzImportLiteLLM(f *testing.F) {
	in, err := os.ReadFile("testdata/litellm/model_prices.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(in)
	f.Add([]byte(`{"m": {"litellm_provider": "openai", "input_cost_per_token": 1e-300, "output_cost_per_token": 1e300}}`))
	f.Add([]byte(`{"m": {"litellm_provider": "x", "input_cost_per_token": 0, "output_cost_per_token": 0, "input_cost_per_token_above_0k_tokens": 1}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ImportLiteLLM(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		// Whatever imports must load and price without panicking.
		c, err := ParseCatalog(out)
		if err != nil {
			t.Fatalf("imported catalog does not load: %v", err)
		}
		_ = c.Price(llmEvent("openai", "m", usage(10, 2, 3, 5, 1)))
	})
}
