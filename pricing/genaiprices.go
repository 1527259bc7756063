package pricing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"go.yaml.in/yaml/v3"
)

// GenAIPricesSourceURL is recorded as the source of entries imported from
// pydantic's genai-prices.
const GenAIPricesSourceURL = "https://github.com/pydantic/genai-prices/blob/main/prices/data.json"

// genAIProviders maps genai-prices provider ids to catalog provider names.
// Only these are imported: the others are providers aivis does not price,
// or (azure) ones it prices as another provider.
var genAIProviders = map[string]string{
	"openai":    "openai",
	"anthropic": "anthropic",
	"google":    "gcp.gemini",
	"aws":       "aws.bedrock",
	"mistral":   "mistral_ai",
}

// genAIRateKeys maps genai-prices price keys (USD per 1M tokens) to rate
// keys. Its other token keys (image, video, cached audio) and its
// per-character, per-page and per-hour keys have no catalog meter.
var genAIRateKeys = map[string]int{
	"input_mtok":          rkInput,
	"output_mtok":         rkOutput,
	"cache_read_mtok":     rkCacheRead,
	"cache_write_mtok":    rkCacheWrite,
	"cache_write_1h_mtok": rkCacheWrite1h,
	"input_audio_mtok":    rkInputAudio,
	"output_audio_mtok":   rkOutputAudio,
}

// genAIServiceTiers maps price_variants "when" conditions to service tiers.
var genAIServiceTiers = map[string]string{
	"service_tier=flex":     "flex",
	"service_tier=priority": "priority",
	"processing=batch":      "batch",
}

type genAIProvider struct {
	ID          string       `json:"id"`
	PricingURLs []string     `json:"pricing_urls"`
	Models      []genAIModel `json:"models"`
}

type genAIModel struct {
	ID            string          `json:"id"`
	Match         json.RawMessage `json:"match"`
	Prices        json.RawMessage `json:"prices"`
	PriceVariants []genAIVariant  `json:"price_variants"`
	Deprecated    bool            `json:"deprecated"`
}

type genAIVariant struct {
	When       map[string]string          `json:"when"`
	Prices     map[string]json.RawMessage `json:"prices"`
	Constraint *genAIConstraint           `json:"constraint"`
}

type genAIConstraint struct {
	StartDate string `json:"start_date"`
	StartTime string `json:"start_time"`
	EndTime   string `json:"end_time"`
}

type genAIConditional struct {
	Constraint *genAIConstraint           `json:"constraint"`
	Prices     map[string]json.RawMessage `json:"prices"`
}

type genAITiered struct {
	Base  json.Number `json:"base"`
	Tiers []struct {
		Start int64       `json:"start"`
		Price json.Number `json:"price"`
	} `json:"tiers"`
}

// genAIPriceSet is one model price parsed: flat rates, and for each tier
// start the keys that change above it.
type genAIPriceSet struct {
	base  rateSpec
	tiers map[int64]*rateSpec
	calls map[string]string
}

// ImportGenAIPrices converts genai-prices' data (the JSON layout of its
// prices/data.json: a list of providers with their models) into a catalog
// YAML document labelled "genai-prices@<version>".
//
// What maps: input/output/cache read/cache write (5-minute)/1-hour cache
// write/audio prices per 1M tokens → rates; web_searches_kcount → the
// web_search per-call fee; TieredPrices (all tokens at the tier's price
// once the request's input tokens exceed start) → whole_request tiers on
// input_tokens, largest start first; conditional prices with a start_date
// → effective-dated versions (the first one applies from 1970);
// price_variants for service_tier flex/priority and processing batch →
// those service tiers, split into versions at their start dates; equals
// clauses → aliases (genai-prices matches case-insensitively), the model id
// → an alias, starts_with/ends_with/contains/regex and their or → one
// case-insensitive pattern.
//
// What cannot be expressed, and is dropped (listed at the top of the
// output): time-of-day prices (off-peak discounts), per-image, per-video,
// per-character, per-page, per-hour and cached-audio prices, the request
// fee (requests_kcount), the "fast"/"default" service tiers and other
// variant keys (speed), tier prices of a service tier (a service tier's
// tiered price keeps its base rate; the standard tier rates apply above
// the threshold unless the variant is a plain multiple, written as
// multiply), and the narrowing clauses of an "and" match (negative
// lookaheads RE2 has no form for): such a model matches on its other
// clauses, which may match more names than upstream. genai-prices tries
// models in order; the catalog tries every exact name and alias before
// any pattern.
func ImportGenAIPrices(r io.Reader, version string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxImportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the genai-prices data: %w", err)
	}
	if len(data) > maxImportBytes {
		return nil, fmt.Errorf("the genai-prices data is larger than %d bytes", maxImportBytes)
	}
	var provs []genAIProvider
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&provs); err != nil {
		return nil, fmt.Errorf("decoding the genai-prices data (want the list of providers of prices/data.json): %w", err)
	}
	if strings.TrimSpace(version) == "" {
		version = "unknown"
	}
	f := catalogFile{CatalogVersion: "genai-prices@" + version, Currency: "USD", ProviderAliases: importedAliases}
	var notes []string
	taken := map[string]bool{}
	for _, pv := range provs {
		prov, ok := genAIProviders[pv.ID]
		if !ok {
			continue
		}
		for _, m := range pv.Models {
			es, dropped, why := genAIEntries(prov, pv.ID, m, taken)
			if why != "" {
				notes = append(notes, fmt.Sprintf("skipped %s/%s: %s", pv.ID, m.ID, why))
				continue
			}
			if len(dropped) > 0 {
				notes = append(notes, fmt.Sprintf("dropped from %s/%s: %s", pv.ID, m.ID, strings.Join(dropped, ", ")))
			}
			f.Models = append(f.Models, es...)
		}
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "# Imported from genai-prices (%s), version %s.\n# Verify before use.\n", GenAIPricesSourceURL, version)
	for _, s := range notes {
		fmt.Fprintf(&out, "# %s\n", strings.ReplaceAll(s, "\n", " "))
	}
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&f); err != nil {
		return nil, fmt.Errorf("encoding the imported catalog: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding the imported catalog: %w", err)
	}
	if _, err := ParseCatalog(out.Bytes()); err != nil {
		return nil, fmt.Errorf("the imported catalog does not load: %w", err)
	}
	return out.Bytes(), nil
}

// genAIEntries converts one model into one catalog entry per date at which
// its prices or its service tiers change.
func genAIEntries(prov, provID string, m genAIModel, taken map[string]bool) ([]modelEntry, []string, string) {
	if m.ID == "" {
		return nil, nil, "no id"
	}
	dropped := map[string]bool{}
	// Conditional prices: a plain object, or a list tried last to first.
	type dated struct {
		from time.Time
		set  genAIPriceSet
	}
	var conds []dated
	trimmed := bytes.TrimSpace(m.Prices)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var list []genAIConditional
		if err := decodeNumbers(m.Prices, &list); err != nil {
			return nil, nil, "prices: " + err.Error()
		}
		for i, c := range list {
			from := time.Unix(0, 0).UTC()
			if c.Constraint != nil {
				if c.Constraint.StartDate == "" {
					dropped["time-of-day prices"] = true
					continue
				}
				t, err := time.Parse(time.DateOnly, c.Constraint.StartDate)
				if err != nil {
					return nil, nil, "start_date " + c.Constraint.StartDate + " is not a date"
				}
				from = t
			} else if i > 0 {
				conds = conds[:0] // an unconditional later price always wins
			}
			set, why := genAIPrices(c.Prices, dropped)
			if why != "" {
				return nil, nil, why
			}
			conds = append(conds, dated{from, set})
		}
	} else {
		var flat map[string]json.RawMessage
		if err := decodeNumbers(m.Prices, &flat); err != nil {
			return nil, nil, "prices: " + err.Error()
		}
		set, why := genAIPrices(flat, dropped)
		if why != "" {
			return nil, nil, why
		}
		conds = append(conds, dated{time.Unix(0, 0).UTC(), set})
	}
	if len(conds) == 0 {
		return nil, nil, "no prices without a time-of-day condition"
	}
	sort.SliceStable(conds, func(a, b int) bool { return conds[a].from.Before(conds[b].from) })
	// Service tier variants, each from its start date.
	type variant struct {
		name string
		from time.Time
		set  genAIPriceSet
	}
	var variants []variant
	for _, v := range m.PriceVariants {
		key := ""
		for k, val := range v.When {
			if key != "" {
				key = "" // more than one condition: not a service tier
				break
			}
			key = k + "=" + val
		}
		name, ok := genAIServiceTiers[key]
		if !ok {
			if key != "service_tier=default" {
				dropped["price variant "+strings.ReplaceAll(fmt.Sprint(v.When), "map", "")] = true
			}
			continue
		}
		from := time.Unix(0, 0).UTC()
		if v.Constraint != nil {
			if v.Constraint.StartDate == "" {
				dropped["time-of-day price variants"] = true
				continue
			}
			t, err := time.Parse(time.DateOnly, v.Constraint.StartDate)
			if err != nil {
				return nil, nil, "variant start_date " + v.Constraint.StartDate + " is not a date"
			}
			from = t
		}
		set, why := genAIPrices(v.Prices, dropped)
		if why != "" {
			return nil, nil, why
		}
		variants = append(variants, variant{name, from, set})
	}
	// Versions start wherever the base prices or a variant change.
	starts := map[time.Time]bool{}
	for _, c := range conds {
		starts[c.from] = true
	}
	for _, v := range variants {
		if !v.from.Before(conds[0].from) {
			starts[v.from] = true
		}
	}
	dates := make([]time.Time, 0, len(starts))
	for d := range starts {
		dates = append(dates, d)
	}
	sort.Slice(dates, func(a, b int) bool { return dates[a].Before(dates[b]) })

	match, why := genAIMatch(prov, m.ID, m.Match, taken, dropped)
	if why != "" {
		return nil, nil, why
	}
	var out []modelEntry
	for _, d := range dates {
		var base genAIPriceSet
		for _, c := range conds {
			if !d.Before(c.from) {
				base = c.set
			}
		}
		if base.base.Input == nil {
			return nil, nil, "no input_mtok"
		}
		if base.base.Output == nil {
			// Embedding models price input only.
			zero := "0.00"
			base.base.Output = &zero
		}
		e := modelEntry{
			ID: "genai-prices/" + provID + "/" + m.ID, Provider: prov, Match: match,
			EffectiveFrom: d.Format(time.RFC3339), Rates: base.base, PerCall: base.calls,
			SourceURL: GenAIPricesSourceURL,
		}
		e.Tiers = genAITierSpecs(base.tiers)
		// The first variant active at d wins, key by key (genai-prices
		// resolves variants first to last with setdefault).
		svc := map[string]*rateSpec{}
		for _, v := range variants {
			if d.Before(v.from) {
				continue
			}
			rs := svc[v.name]
			if rs == nil {
				rs = &rateSpec{}
				svc[v.name] = rs
			}
			dst, src := rs.slots(), v.set.base.slots()
			for i := range dst {
				if *dst[i] == nil && *src[i] != nil {
					*dst[i] = *src[i]
				}
			}
		}
		for name, rs := range svc {
			if e.ServiceTiers == nil {
				e.ServiceTiers = map[string]serviceTierSpec{}
			}
			e.ServiceTiers[name] = genAIServiceTier(base, *rs)
		}
		out = append(out, e)
	}
	sorted := make([]string, 0, len(dropped))
	for k := range dropped {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	return out, sorted, ""
}

// genAIServiceTier writes a service tier as multiply when every rate it
// sets is the same multiple of the base (so the tiers scale too, as they
// do upstream), else as rates.
func genAIServiceTier(base genAIPriceSet, rs rateSpec) serviceTierSpec {
	var factor *decimal.Decimal
	bs, vs := base.base.slots(), rs.slots()
	for i := range vs {
		if *vs[i] == nil {
			continue
		}
		if *bs[i] == nil {
			return serviceTierSpec{Rates: rs}
		}
		b, _ := decimal.NewFromString(**bs[i])
		v, _ := decimal.NewFromString(**vs[i])
		if b.IsZero() {
			return serviceTierSpec{Rates: rs}
		}
		f := v.Div(b)
		if factor != nil && !factor.Equal(f) || !b.Mul(f).Equal(v) {
			return serviceTierSpec{Rates: rs}
		}
		factor = &f
	}
	if factor == nil {
		return serviceTierSpec{Rates: rs}
	}
	// Every base and tier rate must stay exact under the factor, and a key
	// the variant leaves unset must scale too: only then is it a multiple.
	for i := range bs {
		if *bs[i] != nil && *vs[i] == nil {
			return serviceTierSpec{Rates: rs}
		}
	}
	for _, spec := range append([]*rateSpec{&base.base}, tierList(base.tiers)...) {
		for _, sp := range spec.slots() {
			if *sp == nil {
				continue
			}
			d, _ := decimal.NewFromString(**sp)
			if !d.Mul(*factor).Shift(priceDecimals).IsInteger() {
				return serviceTierSpec{Rates: rs}
			}
		}
	}
	fs := factor.String()
	return serviceTierSpec{Multiply: &fs}
}

func tierList(m map[int64]*rateSpec) []*rateSpec {
	out := make([]*rateSpec, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	return out
}

func genAITierSpecs(m map[int64]*rateSpec) []tierSpec {
	starts := make([]int64, 0, len(m))
	for k := range m {
		starts = append(starts, k)
	}
	sort.Slice(starts, func(a, b int) bool { return starts[a] > starts[b] })
	var out []tierSpec
	for _, k := range starts {
		out = append(out, tierSpec{
			Name: fmt.Sprintf("above_%d", k), Mode: ModeWholeRequest, Rates: *m[k],
			When: whenSpec{Field: "input_tokens", Op: "gt", Value: k},
		})
	}
	return out
}

// genAIPrices parses one price map; keys without a catalog meter are
// added to dropped.
func genAIPrices(prices map[string]json.RawMessage, dropped map[string]bool) (genAIPriceSet, string) {
	set := genAIPriceSet{tiers: map[int64]*rateSpec{}}
	for key, raw := range prices {
		if key == "web_searches_kcount" {
			var n json.Number
			if err := decodeNumbers(raw, &n); err != nil {
				return set, key + " is not a number"
			}
			d, err := decimal.NewFromString(n.String())
			if err != nil || d.Sign() < 0 {
				return set, key + " is not a price"
			}
			if set.calls == nil {
				set.calls = map[string]string{}
			}
			set.calls["web_search"] = d.Shift(-3).String()
			continue
		}
		rk, ok := genAIRateKeys[key]
		if !ok {
			dropped[key] = true
			continue
		}
		var tiered genAITiered
		var n json.Number
		if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
			if err := decodeNumbers(raw, &tiered); err != nil {
				return set, key + ": " + err.Error()
			}
			n = tiered.Base
		} else if err := decodeNumbers(raw, &n); err != nil {
			return set, key + " is not a number"
		}
		s, why := genAIPrice(n)
		if why != "" {
			return set, key + " " + why
		}
		*set.base.slots()[rk] = &s
		for _, t := range tiered.Tiers {
			ts, why := genAIPrice(t.Price)
			if why != "" {
				return set, key + " tier " + why
			}
			if t.Start < 0 {
				return set, key + " has a negative tier start"
			}
			if set.tiers[t.Start] == nil {
				set.tiers[t.Start] = &rateSpec{}
			}
			*set.tiers[t.Start].slots()[rk] = &ts
		}
	}
	return set, ""
}

func genAIPrice(n json.Number) (string, string) {
	if len(n) > 64 {
		return "", "is too long a number"
	}
	d, err := decimal.NewFromString(n.String())
	if err != nil {
		return "", "is not a number"
	}
	if d.Sign() < 0 || d.GreaterThan(decimal.NewFromInt(maxPricePerMillion)) {
		return "", "is out of range"
	}
	if !d.Shift(priceDecimals).IsInteger() {
		return "", "has more than 6 decimals per 1M tokens"
	}
	return formatPrice(d), ""
}

func decodeNumbers(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

// genAIMatch turns a genai-prices match clause into aliases and a pattern.
func genAIMatch(prov, id string, raw json.RawMessage, taken map[string]bool, dropped map[string]bool) (modelSpec, string) {
	var spec modelSpec
	var clause any
	if err := decodeNumbers(raw, &clause); err != nil {
		return spec, "match: " + err.Error()
	}
	var equals, alts []string
	var walk func(c any, top bool) bool
	walk = func(c any, top bool) bool {
		m, ok := c.(map[string]any)
		if !ok || len(m) != 1 {
			return false
		}
		for k, v := range m {
			switch k {
			case "or":
				list, _ := v.([]any)
				for _, x := range list {
					if !walk(x, top) {
						return false
					}
				}
				return true
			case "and":
				// RE2 has no lookahead to intersect clauses: keep the
				// clauses that translate and say the rest were dropped.
				list, _ := v.([]any)
				var kept []string
				for _, x := range list {
					s, ok := clausePattern(x)
					if ok {
						kept = append(kept, s)
					}
				}
				if len(kept) == 0 {
					return false
				}
				if len(kept) < len(list) {
					dropped["narrowing clauses of an and match"] = true
				}
				alts = append(alts, kept[0])
				return true
			case "equals":
				s, _ := v.(string)
				if top {
					equals = append(equals, strings.ToLower(s))
					return true
				}
			}
			s, ok := clausePattern(c)
			if !ok {
				return false
			}
			alts = append(alts, s)
			return true
		}
		return false
	}
	if !walk(clause, true) {
		return spec, "its match clause has no catalog form"
	}
	for _, n := range append([]string{strings.ToLower(id)}, equals...) {
		k := prov + "\x00" + n
		if taken[k] {
			continue
		}
		taken[k] = true
		spec.Aliases = append(spec.Aliases, n)
	}
	if len(alts) > 0 {
		spec.Pattern = "(?i)" + strings.Join(alts, "|")
		if _, err := regexp.Compile(spec.Pattern); err != nil || len(spec.Pattern) > maxPatternLen {
			return spec, "its match clause has no catalog form"
		}
	}
	if len(spec.Aliases) == 0 && spec.Pattern == "" {
		return spec, "its names are already taken by an earlier model for provider " + prov
	}
	return spec, ""
}

// clausePattern is the regular expression of one leaf clause.
func clausePattern(c any) (string, bool) {
	m, ok := c.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return "", false
		}
		switch k {
		case "equals":
			return "^" + regexp.QuoteMeta(s) + "$", true
		case "starts_with":
			return "^" + regexp.QuoteMeta(s), true
		case "ends_with":
			return regexp.QuoteMeta(s) + "$", true
		case "contains":
			return regexp.QuoteMeta(s), true
		case "regex":
			if _, err := regexp.Compile(s); err != nil {
				return "", false
			}
			return "(?:" + s + ")", true
		}
	}
	return "", false
}
