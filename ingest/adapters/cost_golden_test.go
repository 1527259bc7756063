package adapters

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/enrich"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/schemas"
)

// goldenCost is what cost.json holds: the price of the normalized event
// under the built-in catalog, so a provider payload is checked all the way
// from its own usage fields to money.
type goldenCost struct {
	PriceID    string             `json:"price_id"`
	CostSource string             `json:"cost_source"`
	CostUSD    string             `json:"cost_usd"`
	CostPicos  int64              `json:"cost_picos"`
	Unpriced   bool               `json:"unpriced,omitempty"`
	Lines      []schemas.CostLine `json:"lines,omitempty"`
}

func TestGoldenCost(t *testing.T) {
	cat, err := pricing.Default()
	if err != nil {
		t.Fatal(err)
	}
	owners, err := enrich.DefaultOwners()
	if err != nil {
		t.Fatal(err)
	}
	e := enrich.NewEnricher(cat, owners)
	priced := map[string]int{}
	for _, c := range goldenCases(t) {
		t.Run(c.adapter+"/"+c.name, func(t *testing.T) {
			input, err := os.ReadFile(filepath.Join(c.dir, "input.json"))
			if err != nil {
				t.Fatal(err)
			}
			res := normalizeFile(t, c.adapter, input)
			if res.Event == nil {
				return
			}
			en := e.Enrich(res.Event)
			gc := goldenCost{PriceID: en.Pricing.PriceID, CostSource: en.CostSource, CostPicos: en.CostPicos,
				CostUSD: decimal.New(en.CostPicos, -12).String(), Unpriced: en.Flags.Unpriced, Lines: en.Pricing.Lines}
			if !gc.Unpriced {
				priced[c.adapter]++
			}
			testenv.GoldenJSON(t, filepath.Join(c.dir, "cost.json"), gc, *update)
		})
	}
	for _, a := range Names() {
		if priced[a] < 5 {
			t.Errorf("adapter %s has %d golden payloads priced by the catalog, want at least 5", a, priced[a])
		}
	}
}
