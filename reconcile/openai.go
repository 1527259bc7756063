package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// ParseOpenAI reads pages of OpenAI's organization Costs API
// (GET /v1/organization/costs, results "organization.costs.result") and
// Completions Usage API (GET /v1/organization/usage/completions, results
// "organization.usage.completions.result"), in any mix. Costs grouped by
// line_item give the model; usage grouped by model gives token
// quantities.
//
// The line_item text is not specified by the API reference; exports show
// "<model>, <meter>" (gpt-4o-2024-08-06, input / cached input / output),
// which is what is inferred here. Any other line item is kept under its own
// name with the meter "other"; a null line_item (costs not grouped by line
// item) is a total that is compared with all of aivis's models of the day.
func ParseOpenAI(name string, data []byte, models *Models) (*Bill, error) {
	w := newWalker(name, data)
	buckets, err := w.buckets()
	if err != nil {
		return nil, err
	}
	bill := &Bill{Format: FormatOpenAI}
	for _, b := range buckets {
		day, err := openAIBucketDay(w, b)
		if err != nil {
			return nil, err
		}
		for _, r := range b.results {
			var head struct {
				Object string `json:"object"`
			}
			if err := decodeStrict(w, r, &head); err != nil {
				return nil, err
			}
			where := fmt.Sprintf("%s:%d", name, r.line)
			switch {
			case head.Object == "organization.costs.result":
				l, err := openAICost(w, r, day, models)
				if err != nil {
					return nil, err
				}
				l.Where = where
				bill.Lines = append(bill.Lines, l)
			case head.Object == "organization.usage.completions.result":
				ls, err := openAIUsage(w, r, day, models)
				if err != nil {
					return nil, err
				}
				for i := range ls {
					ls[i].Where = where
				}
				bill.Lines = append(bill.Lines, ls...)
			case strings.HasPrefix(head.Object, "organization.usage."):
				bill.note("%s: %s results skipped: only completions usage has token quantities aivis compares", name, head.Object)
			default:
				return nil, w.errAt(r.line, r.path+".object", fmt.Errorf("%q is not an OpenAI costs or usage result", head.Object))
			}
		}
	}
	return bill, nil
}

func openAIBucketDay(w *walker, b jsonBucket) (time.Time, error) {
	raw, ok := b.fields["start_time"]
	if !ok {
		return time.Time{}, w.errAt(b.line, b.path+".start_time", errors.New("missing"))
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return time.Time{}, w.errAt(b.line, b.path+".start_time", fmt.Errorf("want unix seconds, got %s", raw))
	}
	sec, err := n.Int64()
	if err != nil || sec < 0 || sec > 1<<40 {
		return time.Time{}, w.errAt(b.line, b.path+".start_time", fmt.Errorf("want unix seconds, got %s", raw))
	}
	return dayOf(time.Unix(sec, 0)), nil
}

func openAICost(w *walker, r jsonResult, day time.Time, models *Models) (Line, error) {
	var res struct {
		Amount *struct {
			Value    json.RawMessage `json:"value"`
			Currency string          `json:"currency"`
		} `json:"amount"`
		LineItem *string `json:"line_item"`
	}
	if err := decodeStrict(w, r, &res); err != nil {
		return Line{}, err
	}
	if res.Amount == nil {
		return Line{}, w.errAt(r.line, r.path+".amount", errors.New("missing"))
	}
	var usd decimal.Decimal
	if c := strings.ToLower(res.Amount.Currency); c != "usd" {
		return Line{}, w.errAt(r.line, r.path+".amount.currency", fmt.Errorf("%q: aivis costs are USD; export the costs in USD", res.Amount.Currency))
	}
	text, err := numberText(res.Amount.Value)
	if err == nil {
		usd, err = parseUSD(text)
	}
	if err != nil {
		return Line{}, w.errAt(r.line, r.path+".amount.value", err)
	}
	l := Line{Day: day, Provider: ProviderOpenAI, Meter: MeterOther, CostUSD: usd}
	if res.LineItem != nil && *res.LineItem != "" {
		model, meter := splitOpenAILineItem(*res.LineItem)
		l.Model, l.Meter = models.Key(ProviderOpenAI, model, day), meter
	}
	l.Credit = usd.IsNegative()
	return l, nil
}

// splitOpenAILineItem reads "gpt-4o-2024-08-06, cached input".
func splitOpenAILineItem(s string) (model, meter string) {
	i := strings.LastIndex(s, ", ")
	if i < 0 {
		return strings.TrimSpace(s), MeterOther
	}
	model = strings.TrimSpace(s[:i])
	switch strings.ToLower(strings.TrimSpace(s[i+2:])) {
	case "input", "uncached input":
		meter = MeterInput
	case "cached input", "cache read input":
		meter = MeterCacheRead
	case "cache write input", "cached write input":
		meter = MeterCacheWrite
	case "output":
		meter = MeterOutput
	default:
		return strings.TrimSpace(s), MeterOther
	}
	return model, meter
}

func openAIUsage(w *walker, r jsonResult, day time.Time, models *Models) ([]Line, error) {
	var res struct {
		Model             *string         `json:"model"`
		InputTokens       json.RawMessage `json:"input_tokens"`
		OutputTokens      json.RawMessage `json:"output_tokens"`
		InputCachedTokens json.RawMessage `json:"input_cached_tokens"`
		InputCacheWrite   json.RawMessage `json:"input_cache_write_tokens"`
	}
	if err := decodeStrict(w, r, &res); err != nil {
		return nil, err
	}
	if res.Model == nil || *res.Model == "" {
		return nil, w.errAt(r.line, r.path+".model", errors.New("missing: export usage with group_by=model to compare it per model"))
	}
	count := func(field string, n json.RawMessage) (int64, error) {
		text, err := numberText(n)
		if err != nil || text == "" {
			if err != nil {
				return 0, w.errAt(r.line, r.path+"."+field, err)
			}
			return 0, nil
		}
		v, err := parseTokens(text)
		if err != nil {
			return 0, w.errAt(r.line, r.path+"."+field, err)
		}
		return v, nil
	}
	in, err := count("input_tokens", res.InputTokens)
	if err != nil {
		return nil, err
	}
	out, err := count("output_tokens", res.OutputTokens)
	if err != nil {
		return nil, err
	}
	cached, err := count("input_cached_tokens", res.InputCachedTokens)
	if err != nil {
		return nil, err
	}
	written, err := count("input_cache_write_tokens", res.InputCacheWrite)
	if err != nil {
		return nil, err
	}
	// OpenAI's input_tokens includes cached and cache-written tokens.
	if cached+written > in {
		return nil, w.errAt(r.line, r.path+".input_cached_tokens", fmt.Errorf("cached (%d) and cache-written (%d) tokens exceed input_tokens (%d)", cached, written, in))
	}
	model := models.Key(ProviderOpenAI, *res.Model, day)
	mk := func(meter string, n int64) Line {
		return Line{Day: day, Provider: ProviderOpenAI, Model: model, Meter: meter, Tokens: n, HasTokens: true}
	}
	return []Line{mk(MeterInput, in-cached-written), mk(MeterCacheRead, cached), mk(MeterCacheWrite, written), mk(MeterOutput, out)}, nil
}
