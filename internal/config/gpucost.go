package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
)

// GPUCost holds the constants of the GPU cost views. aivis migrate and the
// aggregator write them to ClickHouse's gpu_settings table at start, so
// the views gpu_cost_by_window (energy cost, emissions) follow this file.
type GPUCost struct {
	// EnergyUSDPerKWh is a decimal string, as prices are.
	EnergyUSDPerKWh string  `koanf:"energy_usd_per_kwh" help:"energy price in USD per kWh, a decimal string, for the energy_cost_usd of GPU windows (0: not priced)"`
	GridGCO2PerKWh  float64 `koanf:"grid_gco2_per_kwh" help:"grid carbon intensity in gCO2 per kWh, for the emissions_gco2 of GPU windows (0: not estimated)"`
}

// Settings returns the energy price and grid intensity as gpu_settings
// stores them.
func (g GPUCost) Settings() (energyUSDPerKWh, gridGCO2PerKWh float64) {
	d, err := decimal.NewFromString(strings.TrimSpace(g.EnergyUSDPerKWh))
	if err != nil {
		return 0, g.GridGCO2PerKWh
	}
	return d.InexactFloat64(), g.GridGCO2PerKWh
}

// Validate reports every problem at once, with its key path.
func (g GPUCost) Validate() error {
	var errs []error
	if d, err := decimal.NewFromString(strings.TrimSpace(g.EnergyUSDPerKWh)); err != nil {
		errs = append(errs, fmt.Errorf("gpu_cost.energy_usd_per_kwh: %q is not a decimal number (e.g. \"0.12\")", g.EnergyUSDPerKWh))
	} else if d.IsNegative() || d.GreaterThan(decimal.NewFromInt(100)) {
		errs = append(errs, fmt.Errorf("gpu_cost.energy_usd_per_kwh: %s must be between 0 and 100 USD per kWh", d))
	}
	if g.GridGCO2PerKWh < 0 || g.GridGCO2PerKWh > 5000 {
		errs = append(errs, fmt.Errorf("gpu_cost.grid_gco2_per_kwh: %g must be between 0 and 5000 gCO2 per kWh", g.GridGCO2PerKWh))
	}
	return errors.Join(errs...)
}

// SelfHosted configures the self-hosted section of aivis report.
type SelfHosted struct {
	// Comparables are "deployment=provider/model" pairs: the API model a
	// serving deployment's cost per 1M tokens is set against.
	Comparables []string `koanf:"comparables" help:"deployment=provider/model pairs, comma-separated: the API model whose catalog price aivis report shows beside a serving deployment's cost per 1M tokens"`
}

// ComparableModels returns the comparables as deployment → provider/model.
func (s SelfHosted) ComparableModels() (map[string]string, error) {
	out := make(map[string]string, len(s.Comparables))
	var errs []error
	for i, pair := range s.Comparables {
		dep, model, ok := strings.Cut(strings.TrimSpace(pair), "=")
		dep, model = strings.TrimSpace(dep), strings.TrimSpace(model)
		provider, name, slash := strings.Cut(model, "/")
		switch {
		case !ok || dep == "" || !slash || provider == "" || name == "":
			errs = append(errs, fmt.Errorf("self_hosted.comparables[%d]: %q must be deployment=provider/model, e.g. llama-3-8b=openai/gpt-4o-mini", i, pair))
		case out[dep] != "":
			errs = append(errs, fmt.Errorf("self_hosted.comparables[%d]: deployment %q is listed twice", i, dep))
		default:
			out[dep] = model
		}
	}
	return out, errors.Join(errs...)
}

// Validate reports every malformed pair.
func (s SelfHosted) Validate() error {
	_, err := s.ComparableModels()
	return err
}
