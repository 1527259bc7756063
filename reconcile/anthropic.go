package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// ParseAnthropic reads pages of Anthropic's Admin API cost report
// (GET /v1/organizations/cost_report) and messages usage report
// (GET /v1/organizations/usage_report/messages), in any mix. A cost result
// has amount, a decimal string in the currency's lowest unit (cents:
// "123.45" USD is $1.2345), with model, cost_type and token_type when
// grouped by description; a usage result has uncached_input_tokens,
// cache_read_input_tokens, cache_creation.ephemeral_{5m,1h}_input_tokens
// and output_tokens, with model when grouped by model. Buckets start at
// starting_at (RFC 3339, UTC).
func ParseAnthropic(name string, data []byte, models *Models) (*Bill, error) {
	w := newWalker(name, data)
	buckets, err := w.buckets()
	if err != nil {
		return nil, err
	}
	bill := &Bill{Format: FormatAnthropic}
	for _, b := range buckets {
		raw, ok := b.fields["starting_at"]
		if !ok {
			return nil, w.errAt(b.line, b.path+".starting_at", errors.New("missing"))
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, w.errAt(b.line, b.path+".starting_at", fmt.Errorf("want an RFC 3339 time, got %s", raw))
		}
		start, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil, w.errAt(b.line, b.path+".starting_at", fmt.Errorf("want an RFC 3339 time, got %q", s))
		}
		day := dayOf(start)
		for _, r := range b.results {
			var keys map[string]json.RawMessage
			if err := decodeStrict(w, r, &keys); err != nil {
				return nil, err
			}
			where := fmt.Sprintf("%s:%d", name, r.line)
			switch {
			case keys["amount"] != nil:
				l, err := anthropicCost(w, r, day, models)
				if err != nil {
					return nil, err
				}
				l.Where = where
				bill.Lines = append(bill.Lines, l)
			case keys["uncached_input_tokens"] != nil:
				ls, err := anthropicUsage(w, r, day, models)
				if err != nil {
					return nil, err
				}
				for i := range ls {
					ls[i].Where = where
				}
				bill.Lines = append(bill.Lines, ls...)
			default:
				return nil, w.errAt(r.line, r.path, errors.New("neither a cost result (amount) nor a messages usage result (uncached_input_tokens)"))
			}
		}
	}
	return bill, nil
}

var hundred = decimal.NewFromInt(100)

func anthropicCost(w *walker, r jsonResult, day time.Time, models *Models) (Line, error) {
	var res struct {
		Amount    string  `json:"amount"`
		Currency  string  `json:"currency"`
		Model     *string `json:"model"`
		CostType  *string `json:"cost_type"`
		TokenType *string `json:"token_type"`
	}
	if err := decodeStrict(w, r, &res); err != nil {
		return Line{}, err
	}
	if res.Currency != "" && !strings.EqualFold(res.Currency, "USD") {
		return Line{}, w.errAt(r.line, r.path+".currency", fmt.Errorf("%q: aivis costs are USD", res.Currency))
	}
	cents, err := parseUSD(res.Amount)
	if err != nil {
		return Line{}, w.errAt(r.line, r.path+".amount", err)
	}
	l := Line{Day: day, Provider: ProviderAnthropic, Meter: MeterOther, CostUSD: cents.Div(hundred)}
	if res.Model != nil && *res.Model != "" {
		l.Model = models.Key(ProviderAnthropic, *res.Model, day)
	}
	if res.TokenType != nil {
		switch t := *res.TokenType; {
		case t == "uncached_input_tokens":
			l.Meter = MeterInput
		case t == "output_tokens":
			l.Meter = MeterOutput
		case t == "cache_read_input_tokens":
			l.Meter = MeterCacheRead
		case strings.HasPrefix(t, "cache_creation"):
			l.Meter = MeterCacheWrite
		}
	}
	l.Credit = l.CostUSD.IsNegative()
	return l, nil
}

func anthropicUsage(w *walker, r jsonResult, day time.Time, models *Models) ([]Line, error) {
	var res struct {
		Model         *string         `json:"model"`
		Uncached      json.RawMessage `json:"uncached_input_tokens"`
		CacheRead     json.RawMessage `json:"cache_read_input_tokens"`
		Output        json.RawMessage `json:"output_tokens"`
		CacheCreation *struct {
			Ephemeral1h json.RawMessage `json:"ephemeral_1h_input_tokens"`
			Ephemeral5m json.RawMessage `json:"ephemeral_5m_input_tokens"`
		} `json:"cache_creation"`
	}
	if err := decodeStrict(w, r, &res); err != nil {
		return nil, err
	}
	if res.Model == nil || *res.Model == "" {
		return nil, w.errAt(r.line, r.path+".model", errors.New("missing: export usage with group_by[]=model to compare it per model"))
	}
	var errOut error
	count := func(field string, n json.RawMessage) int64 {
		if errOut != nil {
			return 0
		}
		text, err := numberText(n)
		if err != nil || text == "" {
			if err != nil {
				errOut = w.errAt(r.line, r.path+"."+field, err)
			}
			return 0
		}
		v, err := parseTokens(text)
		if err != nil {
			errOut = w.errAt(r.line, r.path+"."+field, err)
		}
		return v
	}
	in := count("uncached_input_tokens", res.Uncached)
	read := count("cache_read_input_tokens", res.CacheRead)
	out := count("output_tokens", res.Output)
	var write int64
	if res.CacheCreation != nil {
		write = count("cache_creation.ephemeral_1h_input_tokens", res.CacheCreation.Ephemeral1h) +
			count("cache_creation.ephemeral_5m_input_tokens", res.CacheCreation.Ephemeral5m)
	}
	if errOut != nil {
		return nil, errOut
	}
	model := models.Key(ProviderAnthropic, *res.Model, day)
	mk := func(meter string, n int64) Line {
		return Line{Day: day, Provider: ProviderAnthropic, Model: model, Meter: meter, Tokens: n, HasTokens: true}
	}
	return []Line{mk(MeterInput, in), mk(MeterCacheRead, read), mk(MeterCacheWrite, write), mk(MeterOutput, out)}, nil
}
