package reconcile

import (
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

func TestParseTolerance(t *testing.T) {
	for _, c := range []struct {
		in             string
		diff, billed   string
		within, hasErr bool
	}{
		{"0.01", "0.01", "100", true, false},
		{"0.01", "-0.011", "100", false, false},
		{"1%", "0.99", "100", true, false},
		{"1%", "1.01", "-100", false, false},
		{"-1", "", "", false, true},
		{"abc", "", "", false, true},
	} {
		tol, err := ParseTolerance(c.in)
		if (err != nil) != c.hasErr {
			t.Errorf("ParseTolerance(%q) error %v", c.in, err)
			continue
		}
		if err == nil && tol.within(decimal.RequireFromString(c.diff), decimal.RequireFromString(c.billed)) != c.within {
			t.Errorf("%s within %s of %s: want %v", c.diff, c.in, c.billed, c.within)
		}
	}
}

// TestCompareTotalWithoutModel: costs without a line item are compared
// with all of aivis's models of the day, credits included; other
// providers stay out.
func TestCompareTotalWithoutModel(t *testing.T) {
	models := testModels(t)
	bill, err := Import(FormatOpenAI, "total.json", strings.NewReader(`{"data": [{"start_time": 1741564800, "results": [
{"object": "organization.costs.result", "amount": {"value": 4.35, "currency": "usd"}, "line_item": null},
{"object": "organization.costs.result", "amount": {"value": -0.5, "currency": "usd"}, "line_item": null}]}]}`), models)
	if err != nil {
		t.Fatal(err)
	}
	aivis := []AivisRow{
		{Day: day1, Provider: "openai", Model: "gpt-4o", Requests: 1, CostUSD: decimal.RequireFromString("3.75")},
		{Day: day1, Provider: "openai", Model: "gpt-4o-mini", Requests: 1, CostUSD: decimal.RequireFromString("0.6")},
		{Day: day1, Provider: "anthropic", Model: "claude-sonnet-4-5", Requests: 1, CostUSD: decimal.RequireFromString("9")},
	}
	res, err := Compare([]*Bill{bill}, aivis, models, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(rowsOf(res), "\n")
	want := "2025-03-10 openai * aivis=4.35 billed=4.35 credits=-0.5 diff=-0.5 discounts_credits"
	if got != want {
		t.Errorf("rows:\n%s\nwant:\n%s", got, want)
	}
}
