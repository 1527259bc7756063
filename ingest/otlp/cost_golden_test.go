package otlp

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

// spanCost is one span's price under the built-in catalog, as cost.json
// holds it beside each golden case.
type spanCost struct {
	EventID    string             `json:"event_id"`
	PriceID    string             `json:"price_id"`
	CostSource string             `json:"cost_source"`
	CostUSD    string             `json:"cost_usd"`
	Unpriced   bool               `json:"unpriced,omitempty"`
	Lines      []schemas.CostLine `json:"lines,omitempty"`
}

// TestGoldenCost checks the golden spans all the way from their
// gen_ai.usage.* attributes to money.
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
	priced := 0
	for _, dir := range goldenDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			input, err := os.ReadFile(filepath.Join(dir, "input.json"))
			if err != nil {
				t.Fatal(err)
			}
			td, err := Decode(input, JSON)
			if err != nil {
				t.Fatal(err)
			}
			var costs []spanCost
			for _, ev := range Convert(td).Events {
				en := e.Enrich(ev)
				costs = append(costs, spanCost{EventID: ev.EventID, PriceID: en.Pricing.PriceID, CostSource: en.CostSource,
					CostUSD: decimal.New(en.CostPicos, -12).String(), Unpriced: en.Flags.Unpriced, Lines: en.Pricing.Lines})
				if !en.Flags.Unpriced {
					priced++
				}
			}
			testenv.GoldenJSON(t, filepath.Join(dir, "cost.json"), costs, *update)
		})
	}
	if priced < 5 {
		t.Errorf("%d golden spans priced by the catalog, want at least 5", priced)
	}
}
