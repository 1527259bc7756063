package pricing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
	"go.yaml.in/yaml/v3"
)

// LiteLLMSourceURL is recorded as the source of imported entries.
const LiteLLMSourceURL = "https://github.com/BerriAI/litellm/blob/main/model_prices_and_context_window.json"

// liteLLMProviders maps litellm_provider values to catalog provider names;
// others are kept as LiteLLM spells them. Every vertex_ai* provider is
// Gemini's: events name Vertex gcp.vertex_ai, which importedAliases sends
// to gcp.gemini, as the default catalog does. Left as LiteLLM spells them,
// Vertex prices were never found and those models went unpriced.
var liteLLMProviders = map[string]string{
	"openai":                     "openai",
	"text-completion-openai":     "openai",
	"azure":                      "azure.ai.openai",
	"anthropic":                  "anthropic",
	"gemini":                     "gcp.gemini",
	"vertex_ai":                  "gcp.gemini",
	"vertex_ai-language-models":  "gcp.gemini",
	"vertex_ai-embedding-models": "gcp.gemini",
	"vertex_ai-text-models":      "gcp.gemini",
	"bedrock":                    "aws.bedrock",
	"bedrock_converse":           "aws.bedrock",
	"mistral":                    "mistral_ai",
}

// importedAliases are the provider spellings an imported catalog accepts
// besides its own provider names: the default catalog's, so that an
// imported catalog finds the same providers for the same events.
var importedAliases = map[string]string{
	"google":        "gcp.gemini",
	"gemini":        "gcp.gemini",
	"gcp.vertex_ai": "gcp.gemini",
	"gcp.gen_ai":    "gcp.gemini",
	"bedrock":       "aws.bedrock",
	"mistral":       "mistral_ai",
}

// liteLLMRateKeys maps LiteLLM per-token cost keys to catalog rate keys.
var liteLLMRateKeys = map[string]int{
	"input_cost_per_token":                      rkInput,
	"output_cost_per_token":                     rkOutput,
	"cache_read_input_token_cost":               rkCacheRead,
	"cache_creation_input_token_cost":           rkCacheWrite,
	"cache_creation_input_token_cost_above_1hr": rkCacheWrite1h,
	"output_cost_per_reasoning_token":           rkReasoning,
	"input_cost_per_audio_token":                rkInputAudio,
	"output_cost_per_audio_token":               rkOutputAudio,
}

var liteLLMAbove = regexp.MustCompile(`^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|cache_creation_input_token_cost|cache_creation_input_token_cost_above_1hr)_above_(\d{1,4})k_tokens$`)

// maxImportBytes bounds the LiteLLM document (the upstream file is ~2 MB).
const maxImportBytes = 64 << 20

// ImportLiteLLM converts LiteLLM's model_prices_and_context_window.json to
// a catalog YAML document labelled "litellm@<version>". Numbers are read
// as decimals, never floats, so 3e-06 USD per token becomes "3.00" per 1M.
//
// Mapping: *_cost_per_token and cache costs → rates (cache creation → both
// cache_write_input and cache_write_input_5m, _above_1hr → 1h);
// *_above_Nk_tokens → a whole_request tier on input_tokens > N×1000 (larger
// thresholds first); *_batches → the batch service tier (a multiply when
// input and output scale alike, else rates); *_flex and *_priority → those
// service tiers' rates. Embedding models are imported with an output rate
// of 0 when LiteLLM gives none. Entries that are not token-priced chat,
// completion, responses or embedding models, or whose prices do not fit
// six decimals per 1M tokens, are skipped and listed in a comment at the
// top of the output. Not expressible, and dropped: per-character, per-image,
// per-second and per-query prices, tiered_pricing ranges, and tier or
// service-tier variants of keys other than the token rates above.
// LiteLLM has no effective dates: imported prices apply from 1970.
// The result is parsed with ParseCatalog before it is returned.
func ImportLiteLLM(r io.Reader, version string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxImportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the LiteLLM price map: %w", err)
	}
	if len(data) > maxImportBytes {
		return nil, fmt.Errorf("the LiteLLM price map is larger than %d bytes", maxImportBytes)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("decoding the LiteLLM price map (want one JSON object keyed by model): %w", err)
	}
	if strings.TrimSpace(version) == "" {
		version = "unknown"
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	f := catalogFile{CatalogVersion: "litellm@" + version, Currency: "USD", ProviderAliases: importedAliases}
	var skipped []string
	taken := map[string]bool{} // provider\x00name
	for _, key := range keys {
		if key == "sample_spec" {
			continue
		}
		e, why := liteLLMEntry(key, raw[key], taken)
		if why != "" {
			skipped = append(skipped, key+": "+why)
			continue
		}
		f.Models = append(f.Models, e)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "# Imported from LiteLLM's price map (%s), version %s.\n# Verify before use; LiteLLM prices carry no effective dates.\n", LiteLLMSourceURL, version)
	for _, s := range skipped {
		fmt.Fprintf(&out, "# skipped %s\n", strings.ReplaceAll(s, "\n", " "))
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

func liteLLMEntry(key string, msg json.RawMessage, taken map[string]bool) (modelEntry, string) {
	var e modelEntry
	var fields map[string]any
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		return e, "not a JSON object"
	}
	mode, _ := fields["mode"].(string)
	switch mode {
	case "", "chat", "completion", "responses", "embedding":
	default:
		return e, "mode " + strconv.Quote(mode) + " is not token-priced text generation"
	}
	lp, _ := fields["litellm_provider"].(string)
	if lp == "" {
		return e, "no litellm_provider"
	}
	prov := liteLLMProviders[lp]
	if prov == "" {
		prov = strings.ToLower(lp)
	}
	var base rateSpec
	tiers := map[int64]*rateSpec{}
	var batchIn, batchOut *decimal.Decimal
	svc := map[string]*rateSpec{}
	for name, v := range fields {
		n, isNum := v.(json.Number)
		if !isNum {
			continue
		}
		var slot **string
		var target *rateSpec
		rk := -1
		switch {
		case liteLLMRateKeys[name] != 0 || name == "input_cost_per_token":
			target, rk = &base, liteLLMRateKeys[name]
		case liteLLMAbove.MatchString(name):
			m := liteLLMAbove.FindStringSubmatch(name)
			k, _ := strconv.ParseInt(m[2], 10, 64)
			if tiers[k] == nil {
				tiers[k] = &rateSpec{}
			}
			target, rk = tiers[k], liteLLMRateKeys[m[1]]
		case name == "input_cost_per_token_batches" || name == "output_cost_per_token_batches":
			d, why := perMillion(n)
			if why != "" {
				return e, name + " " + why
			}
			if name == "input_cost_per_token_batches" {
				batchIn = &d
			} else {
				batchOut = &d
			}
			continue
		default:
			for _, tierName := range []string{"flex", "priority"} {
				baseName, ok := strings.CutSuffix(name, "_"+tierName)
				if k, known := liteLLMRateKeys[baseName]; ok && (known || baseName == "input_cost_per_token") {
					if svc[tierName] == nil {
						svc[tierName] = &rateSpec{}
					}
					target, rk = svc[tierName], k
				}
			}
			if target == nil {
				continue
			}
		}
		d, why := perMillion(n)
		if why != "" {
			return e, name + " " + why
		}
		s := formatPrice(d)
		slot = target.slots()[rk]
		*slot = &s
		if rk == rkCacheWrite {
			s5 := s
			target.CacheWriteInput5m = &s5
		}
	}
	if mode == "embedding" && base.Input != nil && base.Output == nil {
		zero := "0.00"
		base.Output = &zero
	}
	if base.Input == nil || base.Output == nil {
		return e, "no input_cost_per_token and output_cost_per_token"
	}
	e = modelEntry{
		ID: "litellm/" + key, Provider: prov, EffectiveFrom: "1970-01-01T00:00:00Z",
		Rates: base, SourceURL: LiteLLMSourceURL,
	}
	names := []string{key}
	if _, short, ok := strings.Cut(key, "/"); ok && !strings.Contains(short, "/") {
		names = append(names, short)
	}
	for _, n := range names {
		k := prov + "\x00" + n
		if taken[k] {
			continue
		}
		taken[k] = true
		e.Match.Models = append(e.Match.Models, n)
	}
	if len(e.Match.Models) == 0 {
		return e, "its names are already taken by an earlier entry for provider " + prov
	}
	thresholds := make([]int64, 0, len(tiers))
	for k := range tiers {
		thresholds = append(thresholds, k)
	}
	sort.Slice(thresholds, func(a, b int) bool { return thresholds[a] > thresholds[b] })
	for _, k := range thresholds {
		e.Tiers = append(e.Tiers, tierSpec{
			Name: fmt.Sprintf("above_%dk", k), Mode: ModeWholeRequest, Rates: *tiers[k],
			When: whenSpec{Field: "input_tokens", Op: "gt", Value: k * 1000},
		})
	}
	if batchIn != nil || batchOut != nil {
		if e.ServiceTiers == nil {
			e.ServiceTiers = map[string]serviceTierSpec{}
		}
		e.ServiceTiers["batch"] = batchTier(base, batchIn, batchOut)
	}
	for name, rs := range svc {
		if e.ServiceTiers == nil {
			e.ServiceTiers = map[string]serviceTierSpec{}
		}
		e.ServiceTiers[name] = serviceTierSpec{Rates: *rs}
	}
	return e, ""
}

// batchTier expresses LiteLLM's batch prices as a factor when input and
// output scale alike and every base rate stays exact under it, else as
// rates.
func batchTier(base rateSpec, in, out *decimal.Decimal) serviceTierSpec {
	var rs rateSpec
	if in != nil {
		s := formatPrice(*in)
		rs.Input = &s
	}
	if out != nil {
		s := formatPrice(*out)
		rs.Output = &s
	}
	if in == nil || out == nil {
		return serviceTierSpec{Rates: rs}
	}
	bi, _ := decimal.NewFromString(*base.Input)
	bo, _ := decimal.NewFromString(*base.Output)
	if bi.IsZero() || bo.IsZero() {
		return serviceTierSpec{Rates: rs}
	}
	f := in.Div(bi)
	if !f.Equal(out.Div(bo)) || !bi.Mul(f).Equal(*in) || !bo.Mul(f).Equal(*out) {
		return serviceTierSpec{Rates: rs}
	}
	for _, sp := range base.slots() {
		if *sp == nil {
			continue
		}
		d, _ := decimal.NewFromString(**sp)
		if !d.Mul(f).Shift(priceDecimals).IsInteger() {
			return serviceTierSpec{Rates: rs}
		}
	}
	fs := f.String()
	return serviceTierSpec{Multiply: &fs}
}

// perMillion converts USD per token to USD per 1M tokens, exactly.
func perMillion(n json.Number) (decimal.Decimal, string) {
	if len(n) > 64 {
		return decimal.Decimal{}, "is too long a number"
	}
	d, err := decimal.NewFromString(n.String())
	if err != nil {
		return d, "is not a number"
	}
	d = d.Shift(6)
	if d.Sign() < 0 || d.GreaterThan(decimal.NewFromInt(maxPricePerMillion)) {
		return d, "is out of range"
	}
	if !d.Shift(priceDecimals).IsInteger() {
		return d, "has more than 6 decimals per 1M tokens"
	}
	return d, ""
}

// formatPrice writes a price with at least two decimals ("3.00", "0.075").
func formatPrice(d decimal.Decimal) string {
	s := d.String()
	if i := strings.IndexByte(s, '.'); i < 0 || len(s)-i-1 < 2 {
		return d.StringFixed(2)
	}
	return s
}
