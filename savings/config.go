package savings

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/internal/yamlstrict"
)

// Config is the savings section of aivis's configuration. The rules
// (equivalence table, non-interactive rule, provisioned offers, GPU
// profiles) are lists and maps, so they live in their own file (Path).
type Config struct {
	// Path is the savings rules YAML file. Empty: `aivis report savings`
	// uses the built-in rules and the aggregate role runs no recommender.
	Path string `koanf:"path" help:"savings rules YAML file, see docs/savings.md (empty: built-in rules for the report, no daily recommender)"`
	// Interval is how often the recommender checks whether the day's
	// recommendations are computed yet.
	Interval time.Duration `koanf:"interval" help:"how often the daily savings recommender checks whether today's recommendations are computed"`
	// Lookback is the usage each recommendation is computed from.
	Lookback time.Duration `koanf:"lookback" help:"usage range each savings recommendation is computed from, ending at the start of the day (e.g. 168h)"`
	// AlertMinMonthlyUSD is the estimated monthly saving above which a
	// recommendation is published on aivis.alerts.v1.
	AlertMinMonthlyUSD string `koanf:"alert_min_monthly_usd" help:"estimated monthly saving (USD, decimal) above which a recommendation is published on aivis.alerts.v1"`
}

// DefaultConfig checks hourly over a week of usage and alerts from 100 USD
// a month.
func DefaultConfig() Config {
	return Config{Interval: time.Hour, Lookback: 7 * 24 * time.Hour, AlertMinMonthlyUSD: "100"}
}

// Validate reports every problem with its key path; a configured rules
// file is loaded, so that `aivis config validate` catches a bad rule.
func (c Config) Validate() error {
	var errs []error
	if c.Interval <= 0 {
		errs = append(errs, errors.New("savings.interval: must be positive (e.g. 1h)"))
	}
	if c.Lookback < time.Hour || c.Lookback%time.Hour != 0 {
		errs = append(errs, fmt.Errorf("savings.lookback: %s must be a whole number of hours, at least 1h (e.g. 168h)", c.Lookback))
	}
	if _, err := c.AlertMin(); err != nil {
		errs = append(errs, err)
	}
	if c.Path != "" {
		if _, err := LoadRules(c.Path); err != nil {
			errs = append(errs, fmt.Errorf("savings.path: %w", err))
		}
	}
	return errors.Join(errs...)
}

// AlertMin parses AlertMinMonthlyUSD.
func (c Config) AlertMin() (decimal.Decimal, error) {
	d, err := decimal.NewFromString(strings.TrimSpace(c.AlertMinMonthlyUSD))
	if err != nil || d.Sign() < 0 {
		return decimal.Zero, fmt.Errorf("savings.alert_min_monthly_usd: %q must be a non-negative decimal amount in USD (e.g. \"100\")", c.AlertMinMonthlyUSD)
	}
	return d, nil
}

// Rules is the savings rules file.
type Rules struct {
	// MinMonthlyUSD drops recommendations whose estimated monthly saving
	// is below it (default 0.01: anything that rounds to a cent).
	MinMonthlyUSD string      `yaml:"min_monthly_usd"`
	Caching       Caching     `yaml:"caching"`
	Tiers         Tiers       `yaml:"tiers"`
	Equivalents   Equivalents `yaml:"equivalents"`
	Provisioned   []Offer     `yaml:"provisioned"`
	GPU           GPURules    `yaml:"gpu"`
}

// Caching configures the prompt caching recommendation.
type Caching struct {
	// PrefixHashLabel names the label in which producers send a hash of
	// the request's prompt prefix, PrefixTokensLabel the one with the
	// prefix's length in tokens.
	PrefixHashLabel   string `yaml:"prefix_hash_label"`
	PrefixTokensLabel string `yaml:"prefix_tokens_label"`
	// MinRepeats is how many requests of one scope must share a prefix
	// in the range for it to count as repeated.
	MinRepeats int `yaml:"min_repeats"`
	// MaxCacheReadShare: scopes whose cache reads are this share of their
	// input tokens or more already cache, and get no recommendation.
	MaxCacheReadShare string `yaml:"max_cache_read_share"`
}

// Tiers configures the batch and flex recommendation.
type Tiers struct {
	// Candidates are the service tiers offered instead of the standard
	// one, tried in order (the cheapest for the traffic wins).
	Candidates []string `yaml:"candidates"`
	// NonInteractiveLabels mark a request as not interactive when any
	// label has one of the listed values (e.g. interactive: ["false"]).
	NonInteractiveLabels map[string][]string `yaml:"non_interactive_labels"`
	// MinP50LatencyMs marks every request of a scope (team, project, API
	// key, model) as not interactive when the scope's median latency is
	// at least this (0: off).
	MinP50LatencyMs int64 `yaml:"min_p50_latency_ms"`
}

// Equivalents configures the cheaper equivalent model recommendation.
type Equivalents struct {
	// TaskLabel names the label that says what a request is for; each
	// (team, task) is a scope of its own.
	TaskLabel string `yaml:"task_label"`
	// Models lists, per model, the models of the same price class it can
	// be compared with ("provider/model", canonical names).
	Models []Equivalence `yaml:"models"`
}

// Equivalence says the traffic on From could be priced at any of To.
type Equivalence struct {
	From string   `yaml:"from"`
	To   []string `yaml:"to"`
}

// Offer is provisioned throughput or a committed-use contract for one
// model: units bought by the hour, each serving UnitTokensPerHour input
// plus output tokens.
type Offer struct {
	Name              string `yaml:"name"`
	Provider          string `yaml:"provider"`
	Model             string `yaml:"model"`
	UnitUSDPerHour    string `yaml:"unit_usd_per_hour"`
	UnitTokensPerHour int64  `yaml:"unit_tokens_per_hour"`
	MaxUnits          int    `yaml:"max_units"`

	unitPrice decimal.Decimal
}

// GPURules configures the GPU recommendations.
type GPURules struct {
	// MinIdleHours is the idle GPU-hours (owner kind idle) a GPU must
	// have in the range for its idle time to be recommended away.
	MinIdleHours float64 `yaml:"min_idle_hours"`
	// MaxBusyShare: a whole GPU busy at most this share of its allocated
	// time is checked against the MIG profiles of its model.
	MaxBusyShare float64 `yaml:"max_busy_share"`
	// MIGProfiles lists per GPU model the MIG profiles it can be split
	// into, with the share of the GPU's price each costs.
	MIGProfiles map[string][]MIGProfile `yaml:"mig_profiles"`
	// Comparables maps serving deployments to the API model
	// ("provider/model") whose price their tokens are set against.
	Comparables map[string]string `yaml:"comparables"`
}

// MIGProfile is one MIG profile and its share of the whole GPU (compute
// and price), e.g. 3g.40gb at "0.5".
type MIGProfile struct {
	Profile string `yaml:"profile"`
	Share   string `yaml:"share"`

	share decimal.Decimal
}

// DefaultRules are the rules without a file: label names, repeat and share
// thresholds, the batch and flex tiers and a 50% busy share; no equivalence
// table, offers, MIG profiles or comparables, which depend on the site.
func DefaultRules() Rules {
	return Rules{
		MinMonthlyUSD: "0.01",
		Caching:       Caching{PrefixHashLabel: "prefix_hash", PrefixTokensLabel: "prefix_tokens", MinRepeats: 3, MaxCacheReadShare: "0.1"},
		Tiers:         Tiers{Candidates: []string{"batch", "flex"}, NonInteractiveLabels: map[string][]string{"interactive": {"false"}}},
		Equivalents:   Equivalents{TaskLabel: "task"},
		GPU:           GPURules{MinIdleHours: 1, MaxBusyShare: 0.5},
	}
}

// LoadRules reads a rules file over the defaults.
func LoadRules(path string) (Rules, error) {
	data, err := yamlstrict.ReadFile(path)
	if err != nil {
		return Rules{}, fmt.Errorf("opening savings rules %q: %w", path, err)
	}
	r, err := ParseRules(data)
	if err != nil {
		return Rules{}, fmt.Errorf("loading savings rules %q: %w", path, err)
	}
	return r, nil
}

// ParseRules decodes a rules document over DefaultRules and checks it,
// reporting every problem with its key path.
func ParseRules(data []byte) (Rules, error) {
	r := DefaultRules()
	if err := yamlstrict.Decode(data, &r); err != nil {
		return Rules{}, fmt.Errorf("decoding savings rules YAML: %w", err)
	}
	return r, r.check()
}

// fraction parses a decimal in [0, 1].
func fraction(p *yamlstrict.Problems, path, s string) decimal.Decimal {
	d, err := decimal.NewFromString(strings.TrimSpace(s))
	if err != nil || d.Sign() < 0 || d.GreaterThan(decimal.NewFromInt(1)) {
		p.Add(path, "%q must be a decimal fraction between 0 and 1 (e.g. \"0.5\")", s)
	}
	return d
}

func modelRef(p *yamlstrict.Problems, path, s string) {
	if prov, model, ok := strings.Cut(s, "/"); !ok || strings.TrimSpace(prov) == "" || strings.TrimSpace(model) == "" {
		p.Add(path, "%q must be provider/model (e.g. openai/gpt-4o-mini)", s)
	}
}

func (r *Rules) check() error {
	p := yamlstrict.Problems{}
	if d, err := decimal.NewFromString(strings.TrimSpace(r.MinMonthlyUSD)); err != nil || d.Sign() < 0 {
		p.Add("min_monthly_usd", "%q must be a non-negative decimal amount in USD (e.g. \"0.01\")", r.MinMonthlyUSD)
	}
	c := &r.Caching
	if strings.TrimSpace(c.PrefixHashLabel) == "" || strings.TrimSpace(c.PrefixTokensLabel) == "" {
		p.Add("caching", "prefix_hash_label and prefix_tokens_label must name labels (e.g. prefix_hash, prefix_tokens)")
	}
	if c.MinRepeats < 2 {
		p.Add("caching.min_repeats", "%d must be at least 2 (a prefix sent once is never read from a cache)", c.MinRepeats)
	}
	fraction(&p, "caching.max_cache_read_share", c.MaxCacheReadShare)
	for i, t := range r.Tiers.Candidates {
		if strings.TrimSpace(t) == "" {
			p.Add(fmt.Sprintf("tiers.candidates[%d]", i), "must name a service tier of the catalog (e.g. batch, flex)")
		}
	}
	for k, vs := range r.Tiers.NonInteractiveLabels {
		if strings.TrimSpace(k) == "" || len(vs) == 0 {
			p.Add("tiers.non_interactive_labels", "label %q needs a name and at least one value", k)
		}
	}
	if r.Tiers.MinP50LatencyMs < 0 {
		p.Add("tiers.min_p50_latency_ms", "%d must not be negative (0: off)", r.Tiers.MinP50LatencyMs)
	}
	for i, e := range r.Equivalents.Models {
		path := fmt.Sprintf("equivalents.models[%d]", i)
		modelRef(&p, path+".from", e.From)
		if len(e.To) == 0 {
			p.Add(path+".to", "needs at least one provider/model to compare %s with", e.From)
		}
		for j, to := range e.To {
			modelRef(&p, fmt.Sprintf("%s.to[%d]", path, j), to)
			if strings.EqualFold(to, e.From) {
				p.Add(fmt.Sprintf("%s.to[%d]", path, j), "%q is the model itself", to)
			}
		}
	}
	names := map[string]bool{}
	for i := range r.Provisioned {
		o := &r.Provisioned[i]
		path := fmt.Sprintf("provisioned[%d]", i)
		if o.Name == "" || names[o.Name] {
			p.Add(path+".name", "%q must be set and unique", o.Name)
		}
		names[o.Name] = true
		if o.Provider == "" || o.Model == "" {
			p.Add(path, "provider and model (the canonical model) are required")
		}
		d, err := decimal.NewFromString(strings.TrimSpace(o.UnitUSDPerHour))
		if err != nil || d.Sign() <= 0 {
			p.Add(path+".unit_usd_per_hour", "%q must be a positive decimal amount in USD", o.UnitUSDPerHour)
		}
		o.unitPrice = d
		if o.UnitTokensPerHour <= 0 {
			p.Add(path+".unit_tokens_per_hour", "%d must be positive (input plus output tokens one unit serves per hour)", o.UnitTokensPerHour)
		}
		if o.MaxUnits == 0 {
			o.MaxUnits = 1
		}
		if o.MaxUnits < 1 || o.MaxUnits > 1000 {
			p.Add(path+".max_units", "%d must be between 1 and 1000", o.MaxUnits)
		}
	}
	g := &r.GPU
	if g.MinIdleHours < 0 {
		p.Add("gpu.min_idle_hours", "%g must not be negative", g.MinIdleHours)
	}
	if !(g.MaxBusyShare >= 0 && g.MaxBusyShare <= 1) {
		p.Add("gpu.max_busy_share", "%g must be between 0 and 1", g.MaxBusyShare)
	}
	for model, profiles := range g.MIGProfiles {
		for i := range profiles {
			path := fmt.Sprintf("gpu.mig_profiles.%s[%d]", model, i)
			if profiles[i].Profile == "" {
				p.Add(path+".profile", "is required (e.g. 3g.40gb)")
			}
			profiles[i].share = fraction(&p, path+".share", profiles[i].Share)
		}
		slices.SortStableFunc(profiles, func(a, b MIGProfile) int { return a.share.Cmp(b.share) })
	}
	for dep, to := range g.Comparables {
		modelRef(&p, "gpu.comparables."+dep, to)
	}
	return p.Err()
}
