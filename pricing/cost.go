package pricing

import (
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strings"

	"github.com/aivis-dev/aivis/schemas"
	"github.com/shopspring/decimal"
)

// Quote is the priced part of an enriched event.
type Quote struct {
	PriceID string
	// Lines always sum to CostPicos: token and call meters at list price,
	// then any provider or contract adjustment lines.
	Lines     []schemas.CostLine
	CostPicos int64
	// ListCostPicos is the cost at catalog list prices, before contract
	// terms; for a provider-reported cost it equals CostPicos.
	ListCostPicos int64
	// Contract names the contract applied, if any.
	Contract string
	// Source is one of the schemas.CostSource* values.
	Source string
	// Priced is false when neither the catalog nor the provider gives a
	// cost; CostPicos is then 0 and must be flagged.
	Priced bool
	// UnpricedReason says why an unpriced quote is unpriced: one of the
	// Unpriced* values; empty when Priced.
	UnpricedReason string
	// Warnings are findings in "code: detail" form, appended to the
	// enriched event's warnings.
	Warnings []string
	// model is the canonical model name of the entry of PriceID, when
	// an llm.request's entry was found.
	model string
}

// Warning codes added by pricing.
const (
	WarnUnpricedCall        = "unpriced_server_tool_call"
	WarnProviderCostRounded = "provider_cost_rounded"
	WarnProviderCostIgnored = "provider_cost_ignored"
	// WarnCostOutOfRange: the catalog cost is beyond the int64 pico-USD
	// range of one event (MaxEventUSD); the event is unpriced, never
	// wrapped or priced at 0.
	WarnCostOutOfRange = "cost_out_of_range"
)

// Reasons an event is unpriced (Quote.UnpricedReason).
const (
	// UnpricedNoPrice: no catalog price or provider cost applies, or there
	// is no usage to price.
	UnpricedNoPrice = "no_price"
	// UnpricedOutOfRange: the cost cannot be represented; the quote
	// carries a WarnCostOutOfRange warning that says which meter.
	UnpricedOutOfRange = WarnCostOutOfRange
)

// MaxEventUSD is the most one event can cost: the int64 pico-USD range.
const MaxEventUSD = "9223372.036854775807"

// Price computes the list cost of one event, without contract terms; see
// PriceFor.
func (c *Catalog) Price(ev *schemas.Event) Quote { return c.PriceFor(ev, "") }

// PriceFor computes the cost of one event owned by team. It never returns
// a silent zero: an event it cannot price comes back with Priced false.
//
// llm.request tokens are split into meters by usageCounts, each token in
// exactly one meter, and priced at the entry's rates: the service tier's
// (Event.ServiceTier, case-insensitive; a tier the entry does not list is
// priced at the standard rates with a WarnUnknownServiceTier warning), and
// within it the first tier whose condition holds. The model is found by
// resolve: a fallback match (another snapshot, a global price for a
// regional id) adds its warning too; FallbackCodes lists them all. A
// whole_request tier prices every meter at its rates; a graduated tier
// prices only the tokens of its field's family beyond the threshold at its
// rates. Server tool calls add per_call fees, which service tiers do not
// scale; a call kind without a fee adds a warning, not a silent zero.
//
// A provider-reported cost (Event.ProviderCostUSD) wins: the catalog lines
// stay for audit and an adjustment line makes the lines sum to the
// provider's figure; contracts do not apply to it. When it differs from
// the catalog cost by more than the tolerance (WithProviderCostTolerance)
// the quote carries a WarnProviderCostMismatch warning. Otherwise the first
// contract matching team applies after list price.
//
// A request without usage costs 0 when it failed (status "error") and is
// unpriced otherwise, because its tokens are unknown.
func (c *Catalog) PriceFor(ev *schemas.Event, team string) Quote {
	return c.priceFor(ev, team, nil)
}

// priceFor is PriceFor with the quote's lines built in lines when its
// capacity allows.
func (c *Catalog) priceFor(ev *schemas.Event, team string, lines []schemas.CostLine) Quote {
	var q Quote
	if ev.ProviderCostUSD != "" {
		team = "" // the provider's figure is what was billed
	}
	switch ev.Kind {
	case schemas.KindLLMRequest:
		q = c.priceLLM(ev, team, lines)
	case schemas.KindGPUUsage:
		q = c.priceGPU(ev)
		if q.Priced {
			q.ListCostPicos = q.CostPicos
			if team != "" && len(c.contracts) > 0 {
				if k := c.findContract(team, "", ev.GPU.GPUModel, q.priceEntryID()); k != nil {
					applyDiscount(&q, k)
				}
			}
		}
	}
	if q.Priced {
		q.Source = schemas.CostSourceCatalog
	}
	if ev.ProviderCostUSD != "" {
		applyProviderCost(&q, ev.ProviderCostUSD, c.costTolerancePPM)
	}
	if q.Priced {
		q.UnpricedReason = ""
	} else {
		q.Source = schemas.CostSourceNone
		if q.UnpricedReason == "" {
			q.UnpricedReason = UnpricedNoPrice
		}
	}
	return q
}

// outOfRange is the unpriced quote of an event whose cost cannot be
// represented, with the warning that says why.
func outOfRange(priceID, format string, args ...any) Quote {
	return Quote{
		PriceID:        priceID,
		UnpricedReason: UnpricedOutOfRange,
		Warnings:       []string{WarnCostOutOfRange + ": " + fmt.Sprintf(format, args...) + "; the event is unpriced"},
	}
}

// beyondEvent ends the detail of a cost that is too large to represent.
const beyondEvent = "cost more than " + MaxEventUSD + " USD, the most one event can cost"

// PriceEnriched prices e's event for e's owner team and records the result
// on e: Pricing, CanonicalModel, CostPicos, CostSource and Flags.Unpriced.
// An unpriced event gets cost 0 and no lines (an empty, non-nil list, so
// that "lines" is always on the wire). It returns the quote, whose warnings are the
// caller's to keep or drop.
func (c *Catalog) PriceEnriched(e *schemas.Enriched) Quote {
	return c.PriceEnrichedInto(e, nil)
}

// PriceEnrichedInto is PriceEnriched with e.Pricing.Lines built in lines
// when its capacity allows, for a caller that encodes e before pricing the
// next event (the enrich stage): the lines are then not allocated per
// event. e.Pricing.Lines shares lines' memory.
func (c *Catalog) PriceEnrichedInto(e *schemas.Enriched, lines []schemas.CostLine) Quote {
	q := c.priceFor(&e.Event, e.Owner.Team, lines)
	e.Pricing = schemas.Pricing{CatalogVersion: c.version, PriceID: q.PriceID}
	e.CanonicalModel = c.canonicalModelOf(&e.Event, &q)
	e.CostSource = q.Source
	e.CostPicos = 0
	e.Flags.Unpriced = !q.Priced
	e.Pricing.Lines = []schemas.CostLine{} // on the wire as [] when none
	if q.Priced {
		if q.Lines != nil {
			e.Pricing.Lines = q.Lines
		}
		e.CostPicos = q.CostPicos
	}
	return q
}

// canonicalModelOf is the canonical model name of an event: that of the
// entry that priced it, else CanonicalModel's.
func (c *Catalog) canonicalModelOf(ev *schemas.Event, q *Quote) string {
	if ev.Kind == schemas.KindLLMRequest && q.PriceID != "" {
		if q.model != "" {
			return q.model
		}
		if m, ok := c.entryModels[q.priceEntryID()]; ok {
			return m
		}
	}
	m, _ := c.CanonicalModel(ev.Provider, ev.Model)
	return m
}

// priceEntryID is the entry id part of PriceID ("id@from").
func (q *Quote) priceEntryID() string {
	if i := strings.LastIndexByte(q.PriceID, '@'); i >= 0 {
		return q.PriceID[:i]
	}
	return q.PriceID
}

// maxLines bounds the token lines of one event: each meter at most twice
// (base and tier part of a graduated tier).
const maxLines = 2 * numMeters

// lineSet accumulates cost lines without overflow.
type lineSet struct {
	buf      [maxLines]schemas.CostLine
	n        int
	list     int64 // sum at list rates
	contract int64 // sum at contract rates
	// overflow names the first line whose cost, or the sum up to it, is
	// beyond int64 pico-USD ("" if none); the rest are not added.
	overflow string
}

func (s *lineSet) add(meter string, qty int64, r *rate, rk int, k *contract) {
	if qty == 0 || s.overflow != "" {
		return
	}
	fail := func(rate string) {
		s.overflow = fmt.Sprintf("%d %s tokens at %s USD per 1M", qty, meter, rate)
		if s.n > 0 {
			s.overflow = "the tokens up to " + s.overflow
		}
	}
	cost, ok := mulPicos(qty, r.picosPerToken)
	if !ok || s.list > math.MaxInt64-cost {
		fail(r.perMillion)
		return
	}
	s.list += cost
	effective := cost
	if k != nil && k.hasRate[rk] {
		if effective, ok = mulPicos(qty, k.rates[rk].picosPerToken); !ok {
			fail(k.rates[rk].perMillion + " (contract " + k.name + ")")
			return
		}
	}
	if s.contract > math.MaxInt64-effective {
		// Only a contract's rates make this sum larger than the list one.
		fail(r.perMillion + " (at contract " + k.name + "'s rates)")
		return
	}
	s.contract += effective
	// Lines show list prices; contract rates add one adjustment line.
	s.buf[s.n] = schemas.CostLine{Meter: meter, Quantity: qty, UnitPrice: r.perMillion, CostPicos: cost}
	s.n++
}

func (c *Catalog) priceLLM(ev *schemas.Event, team string, lines []schemas.CostLine) Quote {
	p, matchWarnings, ok := c.lookup(ev.Provider, ev.Model, ev.Time)
	if !ok {
		return Quote{}
	}
	u := ev.Usage
	if u == nil {
		if ev.Status == schemas.StatusError {
			return Quote{PriceID: p.priceID, Priced: true, model: p.model}
		}
		return Quote{PriceID: p.priceID, model: p.model}
	}
	cnt, ok := usageCounts(u)
	if !ok {
		// Inconsistent counts would be double counted or negative;
		// validation rejects them upstream, here they are unpriced.
		return Quote{PriceID: p.priceID, model: p.model}
	}
	var k *contract
	if team != "" && len(c.contracts) > 0 {
		prov, _ := c.resolveProvider(ev.Provider)
		k = c.findContract(team, prov, ev.Model, p.id)
	}
	tables := p.tables[0]
	var warnings []string
	if tier := strings.ToLower(strings.TrimSpace(ev.ServiceTier)); tier != "" {
		if i, ok := p.serviceTiers[tier]; ok {
			tables = p.tables[i]
			if i < len(p.warnings) && p.warnings[i] != "" {
				warnings = append(warnings, p.warnings[i])
			}
		} else if !standardTiers[tier] {
			warnings = append(warnings, fmt.Sprintf("%s: %q is not a service tier of entry %s; priced at the standard rates", WarnUnknownServiceTier, ev.ServiceTier, p.id))
		}
	}
	ti := -1
	for i := range p.tiers {
		if p.tiers[i].holds(cnt.field[p.tiers[i].field]) {
			ti = i
			break
		}
	}
	var s lineSet
	base := &tables[0]
	switch {
	case ti < 0:
		for m := range numMeters {
			s.add(meterNames[m], cnt.meter[m], &base[meterRate[m]], meterRate[m], k)
		}
	case !p.tiers[ti].graduated:
		t, names := &tables[ti+1], &p.tiers[ti].meterNames
		for m := range numMeters {
			s.add(names[m], cnt.meter[m], &t[meterRate[m]], meterRate[m], k)
		}
	default:
		tr := &p.tiers[ti]
		t := &tables[ti+1]
		var above [numMeters]int64
		below := cnt.meter
		allowance := tr.baseAllowance
		for _, m := range fieldFamily[tr.field] {
			b := min(below[m], allowance)
			allowance -= b
			above[m] = below[m] - b
			below[m] = b
		}
		for m := range numMeters {
			s.add(meterNames[m], below[m], &base[meterRate[m]], meterRate[m], k)
			s.add(tr.meterNames[m], above[m], &t[meterRate[m]], meterRate[m], k)
		}
	}
	if s.overflow != "" {
		return outOfRange(p.priceID, "%s in entry %s %s", s.overflow, p.id, beyondEvent)
	}
	q := Quote{PriceID: p.priceID, Priced: true, model: p.model}
	q.Warnings = append(q.Warnings, matchWarnings...)
	q.Warnings = append(q.Warnings, warnings...)
	n := s.n + len(u.ServerToolCalls)
	if k != nil {
		n += 2
	}
	if n > 0 {
		if cap(lines) >= n {
			q.Lines = append(lines[:0], s.buf[:s.n]...)
		} else {
			q.Lines = make([]schemas.CostLine, s.n, n)
			copy(q.Lines, s.buf[:s.n])
		}
	}
	list, effective := s.list, s.contract
	if len(u.ServerToolCalls) > 0 {
		kinds := make([]string, 0, len(u.ServerToolCalls))
		for kind := range u.ServerToolCalls {
			kinds = append(kinds, kind)
		}
		sort.Strings(kinds)
		for _, kind := range kinds {
			calls := u.ServerToolCalls[kind]
			if calls < 0 {
				return Quote{PriceID: p.priceID, model: p.model}
			}
			if calls == 0 {
				continue
			}
			cr, ok := p.perCall[kind]
			if !ok {
				q.Warnings = append(q.Warnings, fmt.Sprintf("%s: %d %q calls have no per_call price in entry %s", WarnUnpricedCall, calls, kind, p.id))
				continue
			}
			cost, ok := mulPicos(calls, cr.picosPerCall)
			if !ok || list > math.MaxInt64-cost || effective > math.MaxInt64-cost {
				return outOfRange(p.priceID, "the tokens and %d %q calls at %s USD per 1M in entry %s %s", calls, kind, cr.perMillion, p.id, beyondEvent)
			}
			list += cost
			effective += cost
			q.Lines = append(q.Lines, schemas.CostLine{Meter: MeterCallPrefix + kind, Quantity: calls, UnitPrice: cr.perMillion, CostPicos: cost})
		}
	}
	q.CostPicos, q.ListCostPicos = list, list
	if k != nil {
		if effective != list {
			q.Lines = append(q.Lines, schemas.CostLine{Meter: MeterContractRates, UnitPrice: "0", CostPicos: effective - list})
		}
		q.CostPicos = effective
		applyDiscount(&q, k)
	}
	return q
}

// applyDiscount takes a contract's fractional discount off a priced quote,
// rounded half to even to a whole pico-USD, as one negative line.
func applyDiscount(q *Quote, k *contract) {
	q.Contract = k.name
	if k.discountPPM == 0 || q.CostPicos <= 0 {
		return
	}
	hi, lo := bits.Mul64(uint64(q.CostPicos), uint64(k.discountPPM))
	d, r := bits.Div64(hi, lo, ppm)
	if 2*r > ppm || (2*r == ppm && d%2 == 1) {
		d++
	}
	q.CostPicos -= int64(d)
	q.Lines = append(q.Lines, schemas.CostLine{Meter: MeterContractDiscount, UnitPrice: k.discount, CostPicos: -int64(d)})
}

// applyProviderCost makes a provider-reported cost win over the catalog.
// It must be a non-negative decimal USD amount; digits below 1e-12 USD are
// rounded half to even with a warning. An unusable value is ignored with a
// warning and the catalog cost stands. A cost that differs from the
// catalog's by more than tolerancePPM millionths of the catalog cost wins
// too, with a warning.
func applyProviderCost(q *Quote, s string, tolerancePPM int64) {
	d, err := decimal.NewFromString(s)
	if err != nil || d.Sign() < 0 {
		q.Warnings = append(q.Warnings, fmt.Sprintf("%s: %q is not a non-negative decimal USD amount", WarnProviderCostIgnored, s))
		return
	}
	picos := d.Shift(12)
	if !picos.IsInteger() {
		picos = picos.RoundBank(0)
		q.Warnings = append(q.Warnings, fmt.Sprintf("%s: %s USD has more than 12 decimals; rounded to %s pico-USD", WarnProviderCostRounded, s, picos.String()))
	}
	if picos.GreaterThan(maxPicos) {
		q.Warnings = append(q.Warnings, fmt.Sprintf("%s: %s USD is beyond the int64 pico-USD range", WarnProviderCostIgnored, s))
		return
	}
	cost := picos.IntPart()
	estimate := int64(0)
	if q.Priced {
		estimate = q.CostPicos
		if costsDisagree(cost, estimate, tolerancePPM) {
			q.Warnings = append(q.Warnings, fmt.Sprintf("%s: the provider reported %s USD, the catalog prices %s USD (%s); the provider's cost is kept",
				WarnProviderCostMismatch, picos.Shift(-12).String(), decimal.New(estimate, -12).String(), q.PriceID))
		}
	} else {
		q.Lines = nil
	}
	q.Lines = append(q.Lines, schemas.CostLine{Meter: MeterProviderAdjustment, UnitPrice: "0", CostPicos: cost - estimate})
	q.CostPicos, q.ListCostPicos = cost, cost
	q.Contract = ""
	q.Priced = true
	q.Source = schemas.CostSourceProvider
}

// costsDisagree reports whether provider and catalog costs (pico-USD,
// non-negative) differ by more than tolerancePPM millionths of the
// catalog cost; any difference counts when the catalog cost is 0.
func costsDisagree(provider, catalog, tolerancePPM int64) bool {
	diff := provider - catalog
	if diff < 0 {
		diff = -diff
	}
	if diff == 0 {
		return false
	}
	// diff × 1e6 > tolerance × catalog, in 128 bits.
	dh, dl := bits.Mul64(uint64(diff), ppm)
	th, tl := bits.Mul64(uint64(tolerancePPM), uint64(catalog))
	return dh > th || (dh == th && dl > tl)
}

// DefaultProviderCostTolerancePPM is the default tolerance of a
// provider-reported cost against the catalog's: 2% (20,000 millionths).
const DefaultProviderCostTolerancePPM = 20_000

// WithProviderCostTolerance returns a copy of c that flags provider-reported
// costs differing from the catalog cost by more than fraction of it (0.02
// is 2%); fraction must be in [0, 1000] with at most six decimals.
func (c *Catalog) WithProviderCostTolerance(fraction float64) (*Catalog, error) {
	if fraction < 0 || fraction > 1000 || fraction != fraction {
		return nil, fmt.Errorf("provider cost tolerance %g must be a fraction between 0 and 1000 (0.02 is 2%%)", fraction)
	}
	out := *c
	out.resolved = newResolveCache()
	out.costTolerancePPM = decimal.NewFromFloat(fraction).Shift(6).Round(0).IntPart()
	return &out, nil
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
