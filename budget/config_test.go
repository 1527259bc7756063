package budget

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

func TestExampleBudgetsLoad(t *testing.T) {
	specs, err := LoadFile("../deploy/budgets.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 6 {
		t.Fatalf("got %d budgets, want 6", len(specs))
	}
	s := specs[1]
	if s.ID != "search-gpt4o-weekly" || s.Location.String() != "Europe/Berlin" || !s.Amount.Equal(decimal.RequireFromString("1200.50")) ||
		!s.Soft.Equal(decimal.RequireFromString("900.375")) || !s.Hard.Equal(decimal.NewFromInt(1150)) || !s.Forecast {
		t.Fatalf("second budget: %+v", s)
	}
	if specs[0].Soft.String() != "40000" || !specs[0].Hard.Equal(specs[0].Amount) {
		t.Fatalf("org budget thresholds: soft %s hard %s", specs[0].Soft, specs[0].Hard)
	}
	if specs[3].Location.String() != "America/New_York" || specs[3].Forecast {
		t.Fatalf("annual budget: %+v", specs[3])
	}
	if specs[5].LabelKey != "route" || specs[5].LabelValue != "/v1/checkout" {
		t.Fatalf("label scope: %+v", specs[5])
	}
	// docs/budgets.md shows this very file.
	doc, err := os.ReadFile("../docs/budgets.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../deploy/budgets.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), string(example)) {
		t.Fatal("docs/budgets.md does not show deploy/budgets.example.yaml verbatim; copy the file into it")
	}
}

func TestBudgetValidation(t *testing.T) {
	const ok = "  - id: b\n    scope: {team: search}\n    period: monthly\n    amount_usd: \"100\"\n"
	for _, c := range []struct {
		name string
		yaml string
		want []string // every error must be reported, with its path
	}{
		{"valid", "budgets:\n" + ok, nil},
		{"unknown key", "budgets:\n  - id: b\n    amount: 1\n", []string{"budgets[0].amount: unknown key"}},
		{"bad zone", "timezone: Mars/Base\nbudgets:\n" + ok, []string{"timezone: \"Mars/Base\" is not an IANA time zone"}},
		{"everything missing", "budgets:\n  - name: x\n", []string{
			"budgets[0].id: is required", "budgets[0].scope: is empty", "budgets[0].period: is required", "budgets[0].amount_usd: is required"}},
		{"bad values", "budgets:\n  - id: Bad Id\n    scope: {org: true, team: x}\n    period: fortnightly\n    timezone: Nowhere/City\n    amount_usd: \"-5\"\n", []string{
			"budgets[0].id: \"Bad Id\" must be", "budgets[0].scope.org: counts all spend", "budgets[0].period: \"fortnightly\" must be",
			"budgets[0].timezone: \"Nowhere/City\"", "budgets[0].amount_usd: \"-5\" must be a positive decimal"}},
		{"duplicate id", "budgets:\n" + ok + ok, []string{"budgets[1].id: \"b\" is also the id of budgets[0]"}},
		{"thresholds", "budgets:\n  - id: b\n    scope: {team: s}\n    period: daily\n    amount_usd: \"100\"\n    soft: \"$-1\"\n    hard: 20x\n", []string{
			"budgets[0].soft: \"$-1\" must be a positive amount", "budgets[0].hard: \"20x\" must be a fraction"}},
		{"soft above hard", "budgets:\n  - id: b\n    scope: {team: s}\n    period: daily\n    amount_usd: \"100\"\n    soft: 95%\n    hard: 0.9\n", []string{
			"budgets[0].soft: 95 USD must be below the hard threshold 90 USD"}},
		{"bad label", "budgets:\n  - id: b\n    scope: {label: \"no-equals\"}\n    period: daily\n    amount_usd: \"1\"\n", []string{
			"budgets[0].scope.label: \"no-equals\" must be key=value"}},
		{"percent too big", "budgets:\n  - id: b\n    scope: {model: m}\n    period: daily\n    amount_usd: \"1\"\n    soft: 5000%\n", []string{
			"budgets[0].soft: \"5000%\" must be a percentage"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "b.yaml")
	if err := os.WriteFile(bad, []byte("budgets:\n  - id: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Config{Path: bad, Interval: 0, ReloadInterval: -1, HistoryWeeks: 0}
	err := c.Validate()
	for _, w := range []string{"budget.interval:", "budget.reload_interval:", "budget.history_weeks:", "budget.path: budgets", "budgets[0].period: is required"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not contain %q", err, w)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}
