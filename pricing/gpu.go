package pricing

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aivis-dev/aivis/internal/yamlstrict"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/shopspring/decimal"
)

// GPU pricing categories: a gpu.usage event's pricing_category (or the
// catalog's gpu_default_category) picks among the entries of its GPU model.
const (
	GPUOnDemand = "on_demand"
	GPUReserved = "reserved"
	GPUSpot     = "spot"
	// GPUOnPrem prices owned hardware: its price amortized over its
	// lifetime, plus the event's energy at an energy price per kWh.
	GPUOnPrem = "on_prem"
)

// Labels of a gpu.usage event that narrow its price to a cloud instance
// type and region; entries that list none match any.
const (
	LabelInstanceType = "instance_type"
	LabelRegion       = "region"
)

// MeterGPUEnergyMicroKWh counts the energy of an on_prem GPU in millionths
// of a kWh, so that its price per 1M units is the entry's USD per kWh.
const MeterGPUEnergyMicroKWh = "gpu_energy_microkwh"

// defaultMIGSlices is the compute slices of a MIG-capable GPU (A100, H100,
// H200, B200 have 7), so a 3g.40gb instance is 3/7 of its GPU.
const defaultMIGSlices = 7

// maxOnPremLifetimeHours bounds an on_prem lifetime (about 114 years).
const maxOnPremLifetimeHours = 1_000_000

type gpuEntry struct {
	ID    string  `yaml:"id"`
	Match gpuSpec `yaml:"match"`
	// Category is on_demand (default), reserved, spot or on_prem.
	Category      string `yaml:"category,omitempty"`
	EffectiveFrom string `yaml:"effective_from"`
	// GPUHour is USD per GPU-hour; on_prem entries give OnPrem instead.
	GPUHour *string     `yaml:"gpu_hour,omitempty"`
	OnPrem  *onPremSpec `yaml:"on_prem,omitempty"`
	// MIGSlices is how many compute slices the whole GPU has (default 7);
	// a MIG instance of n slices costs n/MIGSlices of the GPU's price.
	MIGSlices   int    `yaml:"mig_slices,omitempty"`
	SourceURL   string `yaml:"source_url"`
	RetrievedAt string `yaml:"retrieved_at"`
}

type gpuSpec struct {
	GPUModels     []string `yaml:"gpu_models"`
	InstanceTypes []string `yaml:"instance_types,omitempty"`
	Regions       []string `yaml:"regions,omitempty"`
}

// onPremSpec prices an owned GPU: hardware_usd (the GPU's share of its
// server) spread evenly over lifetime_hours of allocation, plus energy.
type onPremSpec struct {
	HardwareUSD     string `yaml:"hardware_usd"`
	LifetimeHours   int64  `yaml:"lifetime_hours"`
	EnergyUSDPerKWh string `yaml:"energy_usd_per_kwh"`
}

// gpuPrice is one effective-dated version of a GPU entry. The hourly price
// is hourPicos / hours pico-USD (hours is 1 except for on_prem, whose
// amortized price need not be a whole pico-USD per hour).
type gpuPrice struct {
	priceID   string
	from      time.Time
	hourPicos int64
	hours     int64
	perHour   string
	// kwhPicos is the energy price of an on_prem entry, pico-USD per kWh.
	kwhPicos  int64
	perKWh    string
	onPrem    bool
	migSlices int
}

// gpuVersions is one GPU entry's versions and what it matches beside the
// GPU model.
type gpuVersions struct {
	id            string
	category      string
	instanceTypes []string // lower-cased; empty matches any
	regions       []string
	list          []gpuPrice
}

func (g *gpuVersions) at(t time.Time) (*gpuPrice, bool) {
	for i := len(g.list) - 1; i >= 0; i-- {
		if !t.Before(g.list[i].from) {
			return &g.list[i], true
		}
	}
	return nil, false
}

// specificity orders the entries of one GPU model and category: one that
// names the instance type and region beats one that names either, which
// beats one that names neither.
func (g *gpuVersions) specificity() int {
	n := 0
	if len(g.instanceTypes) > 0 {
		n += 2
	}
	if len(g.regions) > 0 {
		n++
	}
	return n
}

func (g *gpuVersions) matches(category, instanceType, region string) bool {
	return g.category == category &&
		(len(g.instanceTypes) == 0 || slices.Contains(g.instanceTypes, instanceType)) &&
		(len(g.regions) == 0 || slices.Contains(g.regions, region))
}

// normCategory lower-cases a category and accepts on-demand for on_demand.
func normCategory(s string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_")
}

func validCategory(s string) bool {
	switch s {
	case GPUOnDemand, GPUReserved, GPUSpot, GPUOnPrem:
		return true
	}
	return false
}

func lowerAll(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (c *Catalog) buildGPUs(entries []gpuEntry, defaultCategory string, p *yamlstrict.Problems) {
	c.gpuDefaultCategory = GPUOnDemand
	if defaultCategory != "" {
		if d := normCategory(defaultCategory); validCategory(d) {
			c.gpuDefaultCategory = d
		} else {
			p.Add("gpu_default_category", "%q is not one of on_demand, reserved, spot, on_prem", defaultCategory)
		}
	}
	ids := map[string]*gpuVersions{}
	// owner maps model\x00category\x00instance types\x00regions to the id
	// that prices it, so that two ids cannot price the same thing.
	owner := map[string]string{}
	for i, e := range entries {
		path := fmt.Sprintf("gpus[%d]", i)
		if e.ID == "" {
			p.Add(path+".id", "is required (e.g. \"onprem/h100\")")
			continue
		}
		path = fmt.Sprintf("gpus[%d](%s)", i, e.ID)
		from, err := time.Parse(time.RFC3339, e.EffectiveFrom)
		if err != nil {
			p.Add(path+".effective_from", "must be an RFC 3339 time such as 2025-06-01T00:00:00Z, got %q", e.EffectiveFrom)
			continue
		}
		checkRetrievedAt(p, path, e.RetrievedAt)
		category := GPUOnDemand
		if e.Category != "" {
			category = normCategory(e.Category)
			if !validCategory(category) {
				p.Add(path+".category", "%q is not one of on_demand, reserved, spot, on_prem", e.Category)
				continue
			}
		}
		gp := gpuPrice{from: from.UTC(), hours: 1, migSlices: defaultMIGSlices}
		if e.MIGSlices < 0 || e.MIGSlices > 64 {
			p.Add(path+".mig_slices", "must be between 1 and 64, got %d", e.MIGSlices)
			continue
		} else if e.MIGSlices > 0 {
			gp.migSlices = e.MIGSlices
		}
		if !c.gpuPriceOf(&gp, e, category, path, p) {
			continue
		}
		gp.priceID = e.ID + "@" + gp.from.Format(time.RFC3339)
		instanceTypes, regions := lowerAll(e.Match.InstanceTypes), lowerAll(e.Match.Regions)
		slices.Sort(instanceTypes)
		slices.Sort(regions)
		gv := ids[e.ID]
		if gv == nil {
			gv = &gpuVersions{id: e.ID, category: category, instanceTypes: instanceTypes, regions: regions}
			ids[e.ID] = gv
		} else if gv.category != category || !slices.Equal(gv.instanceTypes, instanceTypes) || !slices.Equal(gv.regions, regions) {
			p.Add(path, "another entry with id %q prices another category, instance types or regions; give this one its own id", e.ID)
			continue
		}
		if slices.ContainsFunc(gv.list, func(v gpuPrice) bool { return v.from.Equal(gp.from) }) {
			p.Add(path+".effective_from", "%s is already used by another entry with id %q", e.EffectiveFrom, e.ID)
			continue
		}
		gv.list = append(gv.list, gp)
		slices.SortFunc(gv.list, func(a, b gpuPrice) int { return a.from.Compare(b.from) })
		if len(e.Match.GPUModels) == 0 {
			p.Add(path+".match.gpu_models", "needs at least one GPU model name")
		}
		key := "\x00" + category + "\x00" + strings.Join(instanceTypes, ",") + "\x00" + strings.Join(regions, ",")
		for j, name := range e.Match.GPUModels {
			lname := strings.ToLower(strings.TrimSpace(name))
			if lname == "" {
				p.Add(fmt.Sprintf("%s.match.gpu_models[%d]", path, j), "must not be empty")
				continue
			}
			if other, dup := owner[lname+key]; dup && other != e.ID {
				p.Add(fmt.Sprintf("%s.match.gpu_models[%d]", path, j), "%q is already priced by %q for this category, instance type and region", name, other)
				continue
			}
			owner[lname+key] = e.ID
			if !slices.Contains(c.gpus[lname], gv) {
				c.gpus[lname] = append(c.gpus[lname], gv)
				slices.SortStableFunc(c.gpus[lname], func(a, b *gpuVersions) int { return b.specificity() - a.specificity() })
			}
		}
	}
}

// gpuPriceOf fills gp's hourly (and on_prem energy) price from e.
func (c *Catalog) gpuPriceOf(gp *gpuPrice, e gpuEntry, category, path string, p *yamlstrict.Problems) bool {
	if category != GPUOnPrem {
		if e.OnPrem != nil {
			p.Add(path+".on_prem", "is only for category on_prem; give gpu_hour")
			return false
		}
		if e.GPUHour == nil {
			p.Add(path+".gpu_hour", "is required (decimal USD per GPU-hour, e.g. \"2.10\")")
			return false
		}
		d, ok := parsePrice(p, path+".gpu_hour", *e.GPUHour, maxGPUHourPrice)
		if !ok {
			return false
		}
		gp.hourPicos, gp.perHour = d.Shift(12).IntPart(), d.String()
		return true
	}
	if e.GPUHour != nil || e.OnPrem == nil {
		p.Add(path+".on_prem", "is required for category on_prem instead of gpu_hour (hardware_usd, lifetime_hours, energy_usd_per_kwh)")
		return false
	}
	o := e.OnPrem
	hw, ok := parsePrice(p, path+".on_prem.hardware_usd", o.HardwareUSD, maxEventUSDInt)
	if !ok {
		return false
	}
	if o.LifetimeHours <= 0 || o.LifetimeHours > maxOnPremLifetimeHours {
		p.Add(path+".on_prem.lifetime_hours", "must be between 1 and %d (4 years is 35040), got %d", maxOnPremLifetimeHours, o.LifetimeHours)
		return false
	}
	kwh, ok := parsePrice(p, path+".on_prem.energy_usd_per_kwh", o.EnergyUSDPerKWh, maxGPUHourPrice)
	if !ok {
		return false
	}
	gp.onPrem = true
	gp.hourPicos, gp.hours = hw.Shift(12).IntPart(), o.LifetimeHours
	gp.perHour = hw.Div(decimal.NewFromInt(o.LifetimeHours)).Round(priceDecimals).String()
	gp.kwhPicos, gp.perKWh = kwh.Shift(12).IntPart(), kwh.String()
	return true
}

// maxEventUSDInt bounds an on_prem hardware price (whole USD).
const maxEventUSDInt = 9_000_000

// lookupGPU finds the price of a GPU model in a category, for an instance
// type and region (lower-cased; empty when the event names none): the
// most specific matching entry with a version in effect at t.
func (c *Catalog) lookupGPU(gpuModel, category, instanceType, region string, t time.Time) (*gpuPrice, bool) {
	for _, g := range c.gpus[strings.ToLower(strings.TrimSpace(gpuModel))] {
		if g.matches(category, instanceType, region) {
			if p, ok := g.at(t); ok {
				return p, true
			}
		}
	}
	return nil, false
}

var migSlicesRE = regexp.MustCompile(`(?:^|\.)(\d+)g\.`)

// migFraction is the slices of a MIG profile (3 for 3g.40gb, 1c.3g.40gb
// and 3g.40gb+me); ok is false for a profile that names none.
func migFraction(profile string) (int, bool) {
	m := migSlicesRE.FindStringSubmatch(strings.ToLower(profile))
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	return n, err == nil && n > 0
}

// maxGPUSeconds bounds one event's GPU time (about 31,700 GPU-years).
const maxGPUSeconds = 1e12

// WarnGPUEnergyUnknown: an on_prem GPU event reports no energy, so only
// its hardware is priced.
const WarnGPUEnergyUnknown = "gpu_energy_unknown"

// priceGPU charges allocated GPU-seconds at the hourly price of the entry
// for the event's GPU model, category (its pricing_category, else the
// catalog's gpu_default_category) and instance_type/region labels:
// cost = seconds × price_per_hour / 3600, times slices/mig_slices for a MIG
// instance. An on_prem entry's hourly price is hardware_usd /
// lifetime_hours, and its energy adds energy_joules / 3.6e6 ×
// energy_usd_per_kwh. Each line is rounded half to even to a whole pico-USD
// once, an error of at most 0.5e-12 USD per line.
func (c *Catalog) priceGPU(ev *schemas.Event) Quote {
	g := ev.GPU
	if g == nil {
		return Quote{}
	}
	category := c.gpuDefaultCategory
	if g.PricingCategory != "" {
		category = normCategory(g.PricingCategory)
	}
	p, ok := c.lookupGPU(g.GPUModel, category,
		strings.ToLower(ev.Labels[LabelInstanceType]), strings.ToLower(ev.Labels[LabelRegion]), ev.Time)
	if !ok {
		return Quote{}
	}
	secs := g.AllocatedSeconds
	if math.IsNaN(secs) || secs < 0 {
		return Quote{PriceID: p.priceID}
	}
	if secs > maxGPUSeconds {
		return outOfRange(p.priceID, "%g allocated GPU-seconds is more than the %g that pricing accepts", secs, float64(maxGPUSeconds))
	}
	num, den := decimal.NewFromInt(p.hourPicos), decimal.NewFromInt(p.hours).Mul(dec3600)
	if g.MIGProfile != "" {
		n, ok := migFraction(g.MIGProfile)
		if !ok || n > p.migSlices {
			return Quote{PriceID: p.priceID, Warnings: []string{fmt.Sprintf("%s: MIG profile %q names no slice count up to %d", WarnUnknownMIGProfile, g.MIGProfile, p.migSlices)}}
		}
		num, den = num.Mul(decimal.NewFromInt(int64(n))), den.Mul(decimal.NewFromInt(int64(p.migSlices)))
	}
	// The shortest decimal that round-trips the float is what the producer
	// wrote in JSON, so no binary noise enters the cost.
	s := decimal.NewFromFloat(secs)
	cost, ok := divRoundHalfEven(s.Mul(num), den)
	if !ok {
		return outOfRange(p.priceID, "%s GPU-seconds at %s USD per hour (%s) %s", s, p.perHour, p.priceID, beyondEvent)
	}
	microhours, ok := divRoundHalfEven(s.Mul(decMillion), dec3600)
	if !ok {
		return outOfRange(p.priceID, "%s GPU-seconds is more micro-hours than int64 holds", s)
	}
	q := Quote{PriceID: p.priceID, Priced: true, CostPicos: cost}
	if microhours != 0 || cost != 0 {
		q.Lines = []schemas.CostLine{{
			Meter:     MeterGPUMicrohours,
			Quantity:  microhours,
			UnitPrice: p.perHour, // per 1M micro-hours = per hour (before a MIG fraction)
			CostPicos: cost,
		}}
	}
	if !p.onPrem {
		return q
	}
	if g.EnergyJoules == nil {
		q.Warnings = append(q.Warnings, fmt.Sprintf("%s: %s is priced on_prem but the event reports no energy; only its hardware is priced", WarnGPUEnergyUnknown, g.GPUModel))
		return q
	}
	j := *g.EnergyJoules
	if math.IsNaN(j) || j < 0 || j > maxGPUSeconds*1e4 {
		return Quote{PriceID: p.priceID}
	}
	joules := decimal.NewFromFloat(j)
	energy, ok := divRoundHalfEven(joules.Mul(decimal.NewFromInt(p.kwhPicos)), decJoulesPerKWh)
	if !ok || energy > math.MaxInt64-cost {
		return outOfRange(p.priceID, "%s J at %s USD per kWh (%s) %s", joules, p.perKWh, p.priceID, beyondEvent)
	}
	microKWh, _ := divRoundHalfEven(joules, decimal.RequireFromString("3.6"))
	if microKWh != 0 || energy != 0 {
		q.Lines = append(q.Lines, schemas.CostLine{Meter: MeterGPUEnergyMicroKWh, Quantity: microKWh, UnitPrice: p.perKWh, CostPicos: energy})
	}
	q.CostPicos += energy
	return q
}

// WarnUnknownMIGProfile: a MIG instance whose profile names no slice count
// the entry knows is unpriced.
const WarnUnknownMIGProfile = "unknown_mig_profile"

var decJoulesPerKWh = decimal.NewFromInt(3_600_000)
