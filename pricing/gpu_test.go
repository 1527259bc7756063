package pricing

import (
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/schemas"
	"github.com/shopspring/decimal"
)

const gpuCatalog = `catalog_version: gpu-test
currency: USD
models: []
gpus:
  - id: aws/p5/on-demand
    match: {gpu_models: [H100]}
    effective_from: 2025-01-01T00:00:00Z
    gpu_hour: "6.88"
  - id: aws/p5/us-west-2/on-demand
    match: {gpu_models: [H100], instance_types: [p5.48xlarge], regions: [us-west-2]}
    effective_from: 2025-01-01T00:00:00Z
    gpu_hour: "7.20"
  - id: aws/p5/spot
    category: spot
    match: {gpu_models: [H100]}
    effective_from: 2025-01-01T00:00:00Z
    gpu_hour: "2.50"
  - id: aws/p5/reserved
    category: reserved
    match: {gpu_models: [H100]}
    effective_from: 2025-01-01T00:00:00Z
    gpu_hour: "4.40"
  - id: onprem/h100
    category: on_prem
    match: {gpu_models: [H100]}
    effective_from: 2025-01-01T00:00:00Z
    on_prem: {hardware_usd: "30000", lifetime_hours: 35040, energy_usd_per_kwh: "0.12"}
`

// TestPriceGPUCategories checks costs computed by hand:
//   - on_demand 1 h at 6.88: 6.88 USD.
//   - the us-west-2 p5.48xlarge entry is more specific: 1 h at 7.20.
//   - spot 90 s at 2.50/h: 2.50 × 90 / 3600 = 0.0625.
//   - reserved 60 s of a 3g.40gb instance: 4.40 × 60/3600 × 3/7
//     = 0.0314285714285714… → 0.031428571429.
//   - on_prem 3600 s: 30000 / 35040 = 0.856164383561643… per hour →
//     0.856164383562 USD; 1.8 MJ = 0.5 kWh at 0.12 = 0.06 USD.
func TestPriceGPUCategories(t *testing.T) {
	c, err := ParseCatalog([]byte(gpuCatalog))
	if err != nil {
		t.Fatal(err)
	}
	joules := 1_800_000.0
	ev := func(category, mig string, secs float64, labels map[string]string, energy *float64) *schemas.Event {
		return &schemas.Event{SchemaVersion: schemas.SchemaVersion, EventID: "g", Time: testTime, Kind: schemas.KindGPUUsage,
			Source: "probe", Labels: labels,
			GPU: &schemas.GPUUsage{GPUModel: "H100", IntervalSeconds: 60, AllocatedSeconds: secs, MIGProfile: mig,
				PricingCategory: category, EnergyJoules: energy}}
	}
	for _, tc := range []struct {
		name    string
		ev      *schemas.Event
		usd     string // "" when unpriced
		priceID string
		warn    string
	}{
		{"default category is on_demand", ev("", "", 3600, nil, nil), "6.88", "aws/p5/on-demand", ""},
		{"on-demand spelling", ev("On-Demand", "", 3600, nil, nil), "6.88", "aws/p5/on-demand", ""},
		{"instance type and region pick the specific entry", ev("", "", 3600,
			map[string]string{"instance_type": "p5.48xlarge", "region": "us-west-2"}, nil), "7.2", "aws/p5/us-west-2/on-demand", ""},
		{"another region falls back to the general entry", ev("", "", 3600,
			map[string]string{"instance_type": "p5.48xlarge", "region": "eu-west-1"}, nil), "6.88", "aws/p5/on-demand", ""},
		{"spot", ev("spot", "", 90, nil, nil), "0.0625", "aws/p5/spot", ""},
		{"reserved MIG 3g.40gb is 3/7", ev("reserved", "3g.40gb", 60, nil, nil), "0.031428571429", "aws/p5/reserved", ""},
		{"MIG 7g.80gb is the whole GPU", ev("reserved", "7g.80gb", 3600, nil, nil), "4.4", "aws/p5/reserved", ""},
		{"MIG profile beyond the GPU", ev("reserved", "8g.90gb", 60, nil, nil), "", "aws/p5/reserved", WarnUnknownMIGProfile},
		{"on_prem hardware and energy", ev("on_prem", "", 3600, nil, &joules), "0.916164383562", "onprem/h100", ""},
		{"on_prem without energy", ev("on_prem", "", 3600, nil, nil), "0.856164383562", "onprem/h100", WarnGPUEnergyUnknown},
		{"unknown category", ev("preemptible", "", 60, nil, nil), "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := c.Price(tc.ev)
			if tc.usd == "" {
				if q.Priced {
					t.Fatalf("priced at %d picos, want unpriced", q.CostPicos)
				}
			} else {
				want := decimal.RequireFromString(tc.usd).Shift(12).IntPart()
				if !q.Priced || q.CostPicos != want {
					t.Fatalf("priced=%v cost=%d picos, want %d (%s USD)", q.Priced, q.CostPicos, want, tc.usd)
				}
				var sum int64
				for _, l := range q.Lines {
					sum += l.CostPicos
				}
				if sum != q.CostPicos {
					t.Errorf("lines sum to %d, cost is %d: %+v", sum, q.CostPicos, q.Lines)
				}
			}
			if !strings.HasPrefix(q.PriceID, tc.priceID) {
				t.Errorf("price id %q, want %s@…", q.PriceID, tc.priceID)
			}
			if tc.warn != "" && (len(q.Warnings) == 0 || !strings.HasPrefix(q.Warnings[0], tc.warn)) {
				t.Errorf("warnings %q, want %s", q.Warnings, tc.warn)
			}
		})
	}
}

func TestGPUCatalogProblems(t *testing.T) {
	head := "catalog_version: x\ncurrency: USD\nmodels: []\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"bad category", head + "gpus:\n  - id: g\n    category: lease\n    match: {gpu_models: [x]}\n    effective_from: 2025-01-01T00:00:00Z\n    gpu_hour: \"1\"\n", "gpus[0](g).category"},
		{"on_prem needs on_prem", head + "gpus:\n  - id: g\n    category: on_prem\n    match: {gpu_models: [x]}\n    effective_from: 2025-01-01T00:00:00Z\n    gpu_hour: \"1\"\n", "gpus[0](g).on_prem"},
		{"lifetime", head + "gpus:\n  - id: g\n    category: on_prem\n    match: {gpu_models: [x]}\n    effective_from: 2025-01-01T00:00:00Z\n    on_prem: {hardware_usd: \"1\", lifetime_hours: 0, energy_usd_per_kwh: \"0.1\"}\n", "lifetime_hours"},
		{"same model, category and place twice", head + "gpus:\n  - id: a\n    match: {gpu_models: [x]}\n    effective_from: 2025-01-01T00:00:00Z\n    gpu_hour: \"1\"\n  - id: b\n    match: {gpu_models: [X]}\n    effective_from: 2025-01-01T00:00:00Z\n    gpu_hour: \"2\"\n", "already priced by \"a\""},
		{"default category", head + "gpu_default_category: lease\n", "gpu_default_category"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCatalog([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestMIGFraction(t *testing.T) {
	for in, want := range map[string]int{"3g.40gb": 3, "1g.10gb+me": 1, "1c.3g.40gb": 3, "7g.80gb": 7, "x": 0} {
		if got, _ := migFraction(in); got != want {
			t.Errorf("migFraction(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestDefaultCatalogGPUCategories: the built-in catalog prices an H100
// hour in every category, at the rates its entries cite:
//   - on_demand 6.88, reserved (Capacity Block) 39.33/8 = 4.91625,
//     spot 6.571;
//   - on_prem 39625 / 35040 = 1.130850456621004… per hour →
//     1.130850456621, plus 3.6 MJ = 1 kWh at 0.0929.
func TestDefaultCatalogGPUCategories(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	joules := 3_600_000.0
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for category, want := range map[string]string{
		GPUOnDemand: "6.88", GPUReserved: "4.91625", GPUSpot: "6.571", GPUOnPrem: "1.223750456621",
	} {
		q := c.Price(&schemas.Event{SchemaVersion: schemas.SchemaVersion, EventID: "g", Time: at, Kind: schemas.KindGPUUsage, Source: "probe",
			GPU: &schemas.GPUUsage{GPUModel: "NVIDIA H100 80GB HBM3", IntervalSeconds: 3600, AllocatedSeconds: 3600,
				PricingCategory: category, EnergyJoules: &joules}})
		if w := decimal.RequireFromString(want).Shift(12).IntPart(); !q.Priced || q.CostPicos != w {
			t.Errorf("%s: priced=%v %d picos (%s), want %s USD", category, q.Priced, q.CostPicos, q.PriceID, want)
		}
	}
}
