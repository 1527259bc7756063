package reconcile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// ParseGCPBilling reads Google Cloud Billing export rows (the BigQuery
// standard usage cost schema) as JSON lines, one row object per line as
// BigQuery exports them (service.description, sku.description,
// usage_start_time, cost, currency, cost_type, usage.amount, usage.unit,
// credits[].amount), or as CSV with those names as columns. BigQuery cannot
// write repeated records to CSV, so a CSV gives credits as a "credits"
// column holding the JSON array, or as a summed credits.amount column:
// both layouts are inferred from how the export is usually flattened.
//
// Rows of Vertex AI and the Gemini API whose SKU names a Gemini model are
// mapped to it (parseGeminiSKU); other AI SKUs keep their description as
// the model; other services are left out with a note.
func ParseGCPBilling(name string, data []byte, models *Models) (*Bill, error) {
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	var rows []gcpRow
	var err error
	if len(trimmed) > 0 && trimmed[0] == '{' {
		rows, err = gcpJSONLines(name, data)
	} else {
		rows, err = gcpCSV(name, data)
	}
	if err != nil {
		return nil, err
	}
	bill := &Bill{Format: FormatGCPBilling}
	skipped := 0
	for _, r := range rows {
		svc := strings.ToLower(r.service)
		if !strings.Contains(svc, "vertex ai") && !strings.Contains(svc, "gemini") && !strings.Contains(svc, "generative language") {
			skipped++
			continue
		}
		credit := false
		switch strings.ToLower(r.costType) {
		case "", "regular":
		case "adjustment", "rounding error":
			credit = true
		default:
			bill.note("%s: cost_type %q rows left out: they are not usage, credits or adjustments", name, r.costType)
			continue
		}
		if r.currency != "" && !strings.EqualFold(r.currency, "USD") {
			return nil, r.fail("currency", fmt.Errorf("%q: aivis costs are USD; export the billing data in USD", r.currency))
		}
		day := dayOf(r.start)
		model, meter := parseGeminiSKU(r.sku)
		if model != "" {
			model = models.Key(ProviderGemini, model, day)
		} else {
			model = r.sku
			bill.note("%s: SKU %q names no Gemini model; its rows are compared under that name", name, r.sku)
		}
		l := Line{Day: day, Provider: ProviderGemini, Model: model, Meter: meter, CostUSD: r.cost, Credit: credit || r.cost.IsNegative(), Where: r.where}
		if !l.Credit && meter != MeterOther && r.hasUsage {
			if strings.Contains(strings.ToLower(r.usageUnit), "token") {
				n, err := parseTokens(r.usageAmount)
				if err != nil {
					return nil, r.fail("usage.amount", err)
				}
				l.Tokens, l.HasTokens = n, true
			} else {
				bill.note("%s: usage.unit %q is not tokens; token quantities are not compared", name, r.usageUnit)
			}
		}
		bill.Lines = append(bill.Lines, l)
		if !r.credits.IsZero() {
			bill.Lines = append(bill.Lines, Line{Day: day, Provider: ProviderGemini, Model: model, Meter: MeterOther, CostUSD: r.credits, Credit: true, Where: r.where})
		}
	}
	if skipped > 0 {
		bill.note("%s: %d rows of other Google Cloud services left out", name, skipped)
	}
	return bill, nil
}

type gcpRow struct {
	service, sku, costType, currency string
	start                            time.Time
	cost, credits                    decimal.Decimal
	usageAmount, usageUnit           string
	hasUsage                         bool
	where                            string
	fail                             func(field string, err error) error
}

func parseGCPTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999 MST", "2006-01-02 15:04:05.999999Z07:00", "2006-01-02 15:04:05 MST", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (want 2006-01-02T15:04:05Z or 2006-01-02 15:04:05 UTC)", s)
}

func gcpJSONLines(name string, data []byte) ([]gcpRow, error) {
	var out []gcpRow
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf"))
		}
		if len(text) == 0 {
			continue
		}
		ln := line
		fail := func(field string, err error) error {
			return &ImportError{File: name, Line: ln, Field: field, Err: err}
		}
		var v struct {
			Service *struct {
				Description string `json:"description"`
			} `json:"service"`
			SKU *struct {
				Description string `json:"description"`
			} `json:"sku"`
			UsageStartTime string          `json:"usage_start_time"`
			Cost           json.RawMessage `json:"cost"`
			Currency       string          `json:"currency"`
			CostType       string          `json:"cost_type"`
			Usage          *struct {
				Amount json.RawMessage `json:"amount"`
				Unit   string          `json:"unit"`
			} `json:"usage"`
			Credits []struct {
				Amount json.RawMessage `json:"amount"`
			} `json:"credits"`
		}
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return nil, fail(te.Field, fmt.Errorf("want %s, got JSON %s", te.Type, te.Value))
			}
			return nil, fail("", fmt.Errorf("invalid JSON: %v", err))
		}
		if dec.More() {
			return nil, fail("", errors.New("more than one JSON value on the line: want one row object per line"))
		}
		r := gcpRow{currency: v.Currency, costType: v.CostType, where: fmt.Sprintf("%s:%d", name, ln), fail: fail}
		if v.Service == nil {
			return nil, fail("service.description", errors.New("missing"))
		}
		r.service = v.Service.Description
		if v.SKU != nil {
			r.sku = v.SKU.Description
		}
		var err error
		if r.start, err = parseGCPTime(v.UsageStartTime); err != nil {
			return nil, fail("usage_start_time", err)
		}
		cost, err := numberText(v.Cost)
		if err == nil {
			r.cost, err = parseUSD(cost)
		}
		if err != nil {
			return nil, fail("cost", err)
		}
		if v.Usage != nil {
			amount, err := numberText(v.Usage.Amount)
			if err != nil {
				return nil, fail("usage.amount", err)
			}
			if amount != "" {
				r.usageAmount, r.usageUnit, r.hasUsage = amount, v.Usage.Unit, true
			}
		}
		for i, c := range v.Credits {
			text, err := numberText(c.Amount)
			if err != nil {
				return nil, fail(fmt.Sprintf("credits[%d].amount", i), err)
			}
			a, err := parseUSD(text)
			if err != nil {
				return nil, fail(fmt.Sprintf("credits[%d].amount", i), err)
			}
			r.credits = r.credits.Add(a)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, &ImportError{File: name, Line: line + 1, Err: fmt.Errorf("reading JSON lines: %v", err)}
	}
	return out, nil
}

func gcpCSV(name string, data []byte) ([]gcpRow, error) {
	t, err := newCSVTable(name, data)
	if err != nil {
		return nil, err
	}
	if err := t.require("service.description", "sku.description", "usage_start_time", "cost"); err != nil {
		return nil, err
	}
	var out []gcpRow
	for {
		ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		line, row := t.line(), t.row // fail names this row, not a later one
		fail := func(field string, err error) error {
			return &ImportError{File: name, Line: line, Row: row, Field: field, Err: err}
		}
		r := gcpRow{service: t.get("service.description"), sku: t.get("sku.description"), currency: t.get("currency"),
			costType: t.get("cost_type"), where: t.where(), fail: fail}
		if r.start, err = parseGCPTime(t.get("usage_start_time")); err != nil {
			return nil, fail("usage_start_time", err)
		}
		if r.cost, err = parseUSD(t.get("cost")); err != nil {
			return nil, fail("cost", err)
		}
		if a := strings.TrimSpace(t.get("usage.amount")); a != "" {
			r.usageAmount, r.usageUnit, r.hasUsage = a, t.get("usage.unit"), true
		}
		if c := strings.TrimSpace(t.get("credits")); c != "" && c != "[]" {
			var credits []struct {
				Amount json.RawMessage `json:"amount"`
			}
			dec := json.NewDecoder(strings.NewReader(c))
			dec.UseNumber()
			if err := dec.Decode(&credits); err != nil {
				return nil, fail("credits", fmt.Errorf("want a JSON array of {\"amount\": …}: %v", err))
			}
			for i, cr := range credits {
				text, err := numberText(cr.Amount)
				var a decimal.Decimal
				if err == nil {
					a, err = parseUSD(text)
				}
				if err != nil {
					return nil, fail(fmt.Sprintf("credits[%d].amount", i), err)
				}
				r.credits = r.credits.Add(a)
			}
		}
		if c := strings.TrimSpace(t.get("credits.amount")); c != "" {
			a, err := parseUSD(c)
			if err != nil {
				return nil, fail("credits.amount", err)
			}
			r.credits = r.credits.Add(a)
		}
		out = append(out, r)
	}
}
