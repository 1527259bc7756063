package pricing

import (
	"fmt"
	"sort"
	"time"

	"github.com/shopspring/decimal"
)

// Kinds of Difference.
const (
	// DiffPrice: both price the model and one rate, tier or service tier
	// differs.
	DiffPrice = "price"
	// DiffOnlyInCatalog: the catalog prices a model the source does not.
	DiffOnlyInCatalog = "only_in_catalog"
	// DiffOnlyInSource: the source prices a model the catalog does not.
	DiffOnlyInSource = "only_in_source"
)

// Difference is one price on which a catalog and another source disagree,
// or a model only one of them prices.
type Difference struct {
	Kind     string
	Provider string
	// Model is a name both sides match (or the side's own name when only
	// one prices it).
	Model string
	// Date is the day (YYYY-MM-DD) the compared versions are in effect;
	// empty for presence differences.
	Date string
	// Meter says what differs: "<service tier>/<rate>" for a rate, with
	// the tier's condition between ("standard/input_tokens>200000/output"),
	// "<service tier>/call:<kind>" for a per-call fee, or a service tier
	// or tier that only one side has ("batch", "standard/input_tokens>200000").
	Meter string
	// Catalog and Source are the two values: USD per 1M tokens (USD per
	// call for fees); "(inherited)" marks a rate a side does not state and
	// takes from its fallback; "none" a tier or service tier it lacks.
	Catalog, Source string
	// CatalogEntry and SourceEntry are the price ids (or entry ids) the
	// values come from.
	CatalogEntry, SourceEntry string
}

// String is one line: provider, model, date, meter, both values.
func (d Difference) String() string {
	switch d.Kind {
	case DiffOnlyInCatalog:
		return fmt.Sprintf("%s %s: only in the catalog (%s)", d.Provider, d.Model, d.CatalogEntry)
	case DiffOnlyInSource:
		return fmt.Sprintf("%s %s: only in the source (%s)", d.Provider, d.Model, d.SourceEntry)
	}
	return fmt.Sprintf("%s %s @%s %s: catalog %s (%s), source %s (%s)",
		d.Provider, d.Model, d.Date, d.Meter, d.Catalog, d.CatalogEntry, d.Source, d.SourceEntry)
}

var epoch = time.Unix(0, 0).UTC()

// Diff lists every difference between catalog c and other for the
// providers c prices: models only one of them prices, and for each model
// both price, every rate, tier, service tier and per-call fee whose price
// differs, at every date at which either side's prices change. A side
// whose entry has a single undated version (from 1970, as imported from
// LiteLLM) is compared at the other side's latest version only, since it
// states today's prices. Per-call fees are compared where both sides
// price the call kind. The result is sorted by provider, model and date.
func Diff(c, other *Catalog) []Difference {
	var out []Difference
	provs := make([]string, 0, len(c.providers))
	for p := range c.providers {
		provs = append(provs, p)
	}
	sort.Strings(provs)
	for _, prov := range provs {
		ci := c.providers[prov]
		_, si := other.resolveProvider(prov)
		catNames := entryNames(ci)
		srcNames := entryNames(si)
		type pair struct{ c, s *versions }
		pairs := map[pair]string{}
		seenC, seenS := map[*versions]bool{}, map[*versions]bool{}
		link := func(cv, sv *versions, name string) {
			if cv == nil || sv == nil {
				return
			}
			seenC[cv], seenS[sv] = true, true
			k := pair{cv, sv}
			if old, ok := pairs[k]; !ok || name < old {
				pairs[k] = name
			}
		}
		for _, en := range catNames {
			for _, n := range en.names {
				link(en.v, other.lookupVersions(prov, n), n)
			}
		}
		for _, en := range srcNames {
			for _, n := range en.names {
				link(c.lookupVersions(prov, n), en.v, n)
			}
		}
		for _, en := range catNames {
			if !seenC[en.v] {
				out = append(out, Difference{Kind: DiffOnlyInCatalog, Provider: prov, Model: en.names[0], CatalogEntry: en.v.id})
			}
		}
		for _, en := range srcNames {
			if !seenS[en.v] {
				out = append(out, Difference{Kind: DiffOnlyInSource, Provider: prov, Model: en.names[0], SourceEntry: en.v.id})
			}
		}
		for k, name := range pairs {
			out = append(out, diffVersions(prov, name, k.c, k.s)...)
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		x, y := out[a], out[b]
		if x.Provider != y.Provider {
			return x.Provider < y.Provider
		}
		if x.Model != y.Model {
			return x.Model < y.Model
		}
		if x.Date != y.Date {
			return x.Date < y.Date
		}
		return x.Meter < y.Meter
	})
	return out
}

type namedEntry struct {
	v     *versions
	names []string // sorted, exact names first
}

// entryNames lists each entry of a provider once with the names that
// select it by exact name or alias.
func entryNames(idx *providerIndex) []namedEntry {
	if idx == nil {
		return nil
	}
	byV := map[*versions]*namedEntry{}
	var order []*namedEntry
	add := func(v *versions, n string) {
		e := byV[v]
		if e == nil {
			e = &namedEntry{v: v}
			byV[v] = e
			order = append(order, e)
		}
		e.names = append(e.names, n)
	}
	for _, m := range sortedKeys(idx.exact) {
		add(idx.exact[m], m)
	}
	for _, m := range sortedKeys(idx.alias) {
		add(idx.alias[m], m)
	}
	for _, p := range idx.patterns {
		if byV[p.v] == nil {
			// A pattern-only entry: its id is the only name it has.
			add(p.v, p.v.id)
		}
	}
	out := make([]namedEntry, len(order))
	for i, e := range order {
		out[i] = *e
	}
	sort.Slice(out, func(a, b int) bool { return out[a].v.id < out[b].v.id })
	return out
}

func sortedKeys(m map[string]*versions) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func undated(v *versions) bool {
	return len(v.list) == 1 && v.list[0].from.Equal(epoch)
}

// diffVersions compares two entries at each date either changes.
func diffVersions(prov, model string, cv, sv *versions) []Difference {
	var dates []time.Time
	switch {
	case undated(sv):
		dates = []time.Time{cv.list[len(cv.list)-1].from}
	case undated(cv):
		dates = []time.Time{sv.list[len(sv.list)-1].from}
	default:
		first := cv.list[0].from
		if sv.list[0].from.After(first) {
			first = sv.list[0].from
		}
		set := map[time.Time]bool{}
		for _, l := range [][]price{cv.list, sv.list} {
			for _, p := range l {
				if !p.from.Before(first) {
					set[p.from] = true
				}
			}
		}
		for d := range set {
			dates = append(dates, d)
		}
		sort.Slice(dates, func(a, b int) bool { return dates[a].Before(dates[b]) })
	}
	var out []Difference
	prev := map[string]bool{} // meter\x00catalog\x00source reported at the previous date
	for _, d := range dates {
		cp, ok1 := cv.at(d)
		sp, ok2 := sv.at(d)
		if !ok1 || !ok2 {
			continue
		}
		cur := map[string]bool{}
		for _, df := range diffPrices(cp, sp) {
			key := df.Meter + "\x00" + df.Catalog + "\x00" + df.Source
			cur[key] = true
			if prev[key] {
				continue // unchanged since the last date compared
			}
			df.Provider, df.Model, df.Date = prov, model, d.Format(time.DateOnly)
			df.Kind, df.CatalogEntry, df.SourceEntry = DiffPrice, cp.priceID, sp.priceID
			out = append(out, df)
		}
		prev = cur
	}
	return out
}

// diffPrices compares two versions: every service tier's base rates, the
// tiers matched by their condition, and per-call fees.
func diffPrices(a, b *price) []Difference {
	var out []Difference
	names := map[string]bool{"standard": true}
	for n := range a.serviceTiers {
		names[n] = true
	}
	for n := range b.serviceTiers {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, svc := range sorted {
		ta, tb := serviceTables(a, svc), serviceTables(b, svc)
		if ta == nil || tb == nil {
			out = append(out, Difference{Meter: svc, Catalog: presence(ta != nil), Source: presence(tb != nil)})
			continue
		}
		out = append(out, diffTable(svc+"/", &ta[0], &tb[0])...)
		conds := map[string][2]int{}
		for i := range a.tiers {
			k := tierCond(&a.tiers[i])
			if _, dup := conds[k]; !dup {
				conds[k] = [2]int{i + 1, 0}
			}
		}
		for i := range b.tiers {
			k := tierCond(&b.tiers[i])
			x, ok := conds[k]
			if !ok {
				x = [2]int{0, 0}
			}
			if x[1] == 0 {
				x[1] = i + 1
			}
			conds[k] = x
		}
		keys := make([]string, 0, len(conds))
		for k := range conds {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			x := conds[k]
			if x[0] == 0 || x[1] == 0 {
				if svc == "standard" {
					out = append(out, Difference{Meter: svc + "/" + k, Catalog: presence(x[0] != 0), Source: presence(x[1] != 0)})
				}
				continue
			}
			out = append(out, diffTable(svc+"/"+k+"/", &ta[x[0]], &tb[x[1]])...)
		}
		for _, kind := range sortedCallKinds(a.perCall) {
			ra, rb := a.perCall[kind], b.perCall[kind]
			if _, ok := b.perCall[kind]; !ok || ra.picosPerCall == rb.picosPerCall || svc != "standard" {
				continue
			}
			out = append(out, Difference{Meter: svc + "/call:" + kind,
				Catalog: callUSD(ra), Source: callUSD(rb)})
		}
	}
	return out
}

func serviceTables(p *price, svc string) []rateTable {
	if svc == "standard" {
		return p.tables[0]
	}
	if i, ok := p.serviceTiers[svc]; ok {
		return p.tables[i]
	}
	return nil
}

func presence(ok bool) string {
	if ok {
		return "priced"
	}
	return "none"
}

// tierCond names a tier by its condition, which two sources share where
// their tier names differ.
func tierCond(t *tier) string {
	ops := map[string]string{"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
	var field string
	for n, f := range fieldNames {
		if f == t.field {
			field = n
		}
	}
	mode := ""
	if t.graduated {
		mode = "(graduated)"
	}
	return fmt.Sprintf("%s%s%d%s", field, ops[t.op], t.value, mode)
}

func diffTable(prefix string, a, b *rateTable) []Difference {
	var out []Difference
	for k := range numRateKeys {
		ra, rb := a[k], b[k]
		if !ra.set && !rb.set || ra.picosPerToken == rb.picosPerToken {
			continue
		}
		out = append(out, Difference{Meter: prefix + rateKeyNames[k], Catalog: rateValue(ra), Source: rateValue(rb)})
	}
	return out
}

func rateValue(r rate) string {
	if r.set {
		return r.perMillion
	}
	return r.perMillion + " (inherited)"
}

func callUSD(r callRate) string {
	return decimal.NewFromInt(r.picosPerCall).Shift(-callDecimals).String()
}

func sortedCallKinds(m map[string]callRate) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
