package pricing

import (
	"strings"
	"testing"

	"github.com/aivis-dev/aivis/schemas"
)

// TestCostOutOfRangeIsFlagged: a cost that int64 pico-USD cannot hold is
// unpriced with a cost_out_of_range warning and reason, never a silent 0.
// 10^12 output tokens at Opus's 75 USD per 1M is 75 million USD.
func TestCostOutOfRangeIsFlagged(t *testing.T) {
	c := mustCatalog(t, "testdata/catalog.yaml")
	gpu := func(secs float64) *schemas.Event {
		return &schemas.Event{
			SchemaVersion: schemas.SchemaVersion, EventID: "g1", Time: testTime, Kind: schemas.KindGPUUsage, Source: "probe",
			GPU: &schemas.GPUUsage{GPUModel: "H100-SXM-80GB", IntervalSeconds: 60, AllocatedSeconds: secs},
		}
	}
	calls := llmEvent("testprov", "cachey", &schemas.Usage{ServerToolCalls: map[string]int64{"web_search": schemas.MaxTokens}})
	cases := []struct {
		name   string
		ev     *schemas.Event
		team   string
		detail string // in the warning
	}{
		{"10^12 output tokens at 75 USD per 1M", llmEvent("testprov", "opus", usage(0, 0, 0, 1_000_000_000_000, 0)), "",
			"1000000000000 output tokens at 75 USD per 1M in entry test/opus cost more than 9223372.036854775807 USD"},
		{"the sum of two meters", llmEvent("testprov", "opus", usage(110_000_000_000, 0, 0, 110_000_000_000, 0)), "",
			"the tokens up to 110000000000 output tokens at 75 USD per 1M"},
		{"server tool calls", calls, "", `68719476736 "web_search" calls at 10000 USD per 1M`},
		{"GPU-seconds at the hourly price", gpu(1e11), "", "100000000000 GPU-seconds at 6.88 USD per hour"},
		{"GPU-seconds past what pricing accepts", gpu(1e13), "", "1e+13 allocated GPU-seconds is more than the 1e+12"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := c.PriceFor(tc.ev, tc.team)
			if q.Priced || q.CostPicos != 0 || q.Source != schemas.CostSourceNone || q.UnpricedReason != UnpricedOutOfRange {
				t.Fatalf("priced=%v cost=%d source=%q reason=%q, want unpriced, %s", q.Priced, q.CostPicos, q.Source, q.UnpricedReason, UnpricedOutOfRange)
			}
			if len(q.Warnings) != 1 || !strings.HasPrefix(q.Warnings[0], WarnCostOutOfRange+": ") || !strings.Contains(q.Warnings[0], tc.detail) {
				t.Fatalf("warnings %q, want one %s warning containing %q", q.Warnings, WarnCostOutOfRange, tc.detail)
			}
		})
	}

	// On the enriched event: unpriced flag, cost 0, source none.
	e := &schemas.Enriched{Event: *cases[0].ev}
	q := c.PriceEnriched(e)
	if !e.Flags.Unpriced || e.CostPicos != 0 || e.CostSource != schemas.CostSourceNone || q.UnpricedReason != UnpricedOutOfRange {
		t.Errorf("enriched: unpriced=%v cost=%d source=%q reason=%q", e.Flags.Unpriced, e.CostPicos, e.CostSource, q.UnpricedReason)
	}
}

// TestUnpricedReason: other unpriced events say no_price; a provider cost
// prices an event whose catalog cost is out of range, and the warning
// about the catalog stays for audit.
func TestUnpricedReason(t *testing.T) {
	c := mustCatalog(t, "testdata/catalog.yaml")
	if q := c.Price(llmEvent("testprov", "mystery", usage(10, 0, 0, 10, 0))); q.Priced || q.UnpricedReason != UnpricedNoPrice {
		t.Errorf("unknown model: priced=%v reason=%q, want %s", q.Priced, q.UnpricedReason, UnpricedNoPrice)
	}
	if q := c.Price(llmEvent("testprov", "opus", usage(10, 0, 0, 10, 0))); !q.Priced || q.UnpricedReason != "" {
		t.Errorf("priced event: priced=%v reason=%q", q.Priced, q.UnpricedReason)
	}
	ev := llmEvent("testprov", "opus", usage(0, 0, 0, 1_000_000_000_000, 0))
	ev.ProviderCostUSD = "1000000"
	q := c.Price(ev)
	checkQuote(t, q, 1_000_000*1_000_000_000_000, nil)
	if q.Source != schemas.CostSourceProvider || q.UnpricedReason != "" || len(q.Warnings) != 1 || !strings.HasPrefix(q.Warnings[0], WarnCostOutOfRange) {
		t.Errorf("provider cost: source=%q reason=%q warnings=%q", q.Source, q.UnpricedReason, q.Warnings)
	}
}
