package enrich

import (
	"math"

	"github.com/aivis-dev/aivis/schemas"
	"github.com/shopspring/decimal"
)

// Quote is the priced part of an enriched event.
type Quote struct {
	PriceID   string
	Lines     []schemas.CostLine
	CostPicos int64
	// Priced is false when the catalog has no price for the event or its
	// usage cannot be priced; CostPicos is then 0 and must be flagged.
	Priced bool
}

// Price computes the cost of one event under the catalog. It never returns
// a silent zero: an event it cannot price comes back with Priced false.
//
// llm.request follows the normalized token convention: input_tokens
// includes cache reads and writes, output_tokens includes reasoning. Each
// token is priced once:
//
//	input − cache_read − cache_write  at input
//	cache_read                        at cache_read_input  (else input)
//	cache_write                       at cache_write_input (else input)
//	output − reasoning                at output
//	reasoning                         at reasoning_output  (else output)
//
// A request without usage costs 0 when it failed (status "error") and is
// unpriced otherwise, because its tokens are unknown.
func (c *Catalog) Price(ev *schemas.Event) Quote {
	switch ev.Kind {
	case schemas.KindLLMRequest:
		return c.priceLLM(ev)
	case schemas.KindGPUUsage:
		return c.priceGPU(ev)
	}
	return Quote{}
}

func (c *Catalog) priceLLM(ev *schemas.Event) Quote {
	p, ok := c.lookup(ev.Provider, ev.Model, ev.Time)
	if !ok {
		return Quote{}
	}
	u := ev.Usage
	if u == nil {
		if ev.Status == schemas.StatusError {
			return Quote{PriceID: p.priceID, Priced: true}
		}
		return Quote{PriceID: p.priceID}
	}
	in := schemas.Get(u.InputTokens)
	read := schemas.Get(u.CacheReadInputTokens)
	write := schemas.Get(u.CacheWriteInputTokens)
	out := schemas.Get(u.OutputTokens)
	reason := schemas.Get(u.ReasoningOutputTokens)
	// Inconsistent counts would be double counted or negative; validation
	// rejects them upstream, and here they are unpriced rather than guessed.
	if in < 0 || read < 0 || write < 0 || out < 0 || reason < 0 ||
		read > in || write > in-read || reason > out {
		return Quote{PriceID: p.priceID}
	}
	meters := [5]struct {
		name string
		qty  int64
		r    *rate
	}{
		{MeterInput, in - read - write, &p.input},
		{MeterCacheReadInput, read, &p.cacheRead},
		{MeterCacheWriteInput, write, &p.cacheWrite},
		{MeterOutput, out - reason, &p.output},
		{MeterReasoningOutput, reason, &p.reasoning},
	}
	n := 0
	for _, m := range meters {
		if m.qty != 0 {
			n++
		}
	}
	q := Quote{PriceID: p.priceID, Priced: true}
	if n == 0 {
		return q
	}
	q.Lines = make([]schemas.CostLine, 0, n)
	for _, m := range meters {
		if m.qty == 0 {
			continue
		}
		cost, ok := mulPicos(m.qty, m.r.picosPerToken)
		if !ok {
			return Quote{PriceID: p.priceID}
		}
		if q.CostPicos > math.MaxInt64-cost {
			return Quote{PriceID: p.priceID}
		}
		q.CostPicos += cost
		q.Lines = append(q.Lines, schemas.CostLine{
			Meter:     m.name,
			Quantity:  m.qty,
			UnitPrice: m.r.perMillion,
			CostPicos: cost,
		})
	}
	return q
}

// mulPicos multiplies a count by a non-negative rate, reporting overflow
// of the int64 pico-USD range (about 9.2 million USD).
func mulPicos(qty, picos int64) (int64, bool) {
	if qty == 0 || picos == 0 {
		return 0, true
	}
	if qty > math.MaxInt64/picos {
		return 0, false
	}
	return qty * picos, true
}

var (
	dec3600    = decimal.NewFromInt(3600)
	decMillion = decimal.NewFromInt(1_000_000)
	maxPicos   = decimal.NewFromInt(math.MaxInt64)
)

// maxGPUSeconds bounds one event's GPU time (about 31,700 GPU-years).
const maxGPUSeconds = 1e12

// priceGPU charges allocated GPU-seconds at the gpu_hour price:
// cost = seconds × price_per_hour / 3600. The division by 3600 is exact
// only for some second counts; the remainder is rounded half to even to a
// whole pico-USD, an error of at most 0.5e-12 USD per event.
func (c *Catalog) priceGPU(ev *schemas.Event) Quote {
	if ev.GPU == nil {
		return Quote{}
	}
	p, ok := c.lookupGPU(ev.GPU.GPUModel, ev.Time)
	if !ok {
		return Quote{}
	}
	secs := ev.GPU.AllocatedSeconds
	if math.IsNaN(secs) || secs < 0 || secs > maxGPUSeconds {
		return Quote{PriceID: p.priceID}
	}
	// The shortest decimal that round-trips the float is what the producer
	// wrote in JSON, so no binary noise enters the cost.
	s := decimal.NewFromFloat(secs)
	cost, ok := divRoundHalfEven(s.Mul(decimal.NewFromInt(p.picosPerHour)), dec3600)
	if !ok {
		return Quote{PriceID: p.priceID}
	}
	microhours, ok := divRoundHalfEven(s.Mul(decMillion), dec3600)
	if !ok {
		return Quote{PriceID: p.priceID}
	}
	q := Quote{PriceID: p.priceID, Priced: true, CostPicos: cost}
	if microhours != 0 || cost != 0 {
		q.Lines = []schemas.CostLine{{
			Meter:     MeterGPUMicrohours,
			Quantity:  microhours,
			UnitPrice: p.perHour, // per 1M micro-hours = per hour
			CostPicos: cost,
		}}
	}
	return q
}

// divRoundHalfEven returns n / d rounded half to even, for n >= 0, d > 0,
// reporting whether the result fits in int64.
func divRoundHalfEven(n, d decimal.Decimal) (int64, bool) {
	q, r := n.QuoRem(d, 0)
	switch r.Mul(decimal.NewFromInt(2)).Cmp(d) {
	case 1:
		q = q.Add(decimal.NewFromInt(1))
	case 0:
		if q.Mod(decimal.NewFromInt(2)).Sign() != 0 {
			q = q.Add(decimal.NewFromInt(1))
		}
	}
	if q.GreaterThan(maxPicos) || q.Sign() < 0 {
		return 0, false
	}
	return q.IntPart(), true
}
