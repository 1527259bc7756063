package budget

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/internal/yamlstrict"
)

// Config is the budget section of aivis's configuration. The budgets
// themselves are a list, so they live in their own file (Path).
type Config struct {
	// Path is the budgets YAML file; empty evaluates no budgets.
	Path string `koanf:"path" help:"budgets YAML file, see docs/budgets.md (empty: no budgets are evaluated)"`
	// Interval is how often every budget is evaluated.
	Interval time.Duration `koanf:"interval" help:"how often every budget is evaluated"`
	// ReloadInterval is how often the file is checked for changes.
	ReloadInterval time.Duration `koanf:"reload_interval" help:"how often the budgets file is checked for changes (0: never reloaded)"`
	// HistoryWeeks is how many weeks of hourly spend the forecast fits its
	// hour-of-week profile to.
	HistoryWeeks int `koanf:"history_weeks" help:"weeks of hourly spend the forecast fits its hour-of-week profile to"`
}

// DefaultConfig evaluates every minute over four weeks of history.
func DefaultConfig() Config {
	return Config{Interval: time.Minute, ReloadInterval: 30 * time.Second, HistoryWeeks: 4}
}

// Validate reports every problem with its key path; a configured budgets
// file is loaded, so that `aivis config validate` catches a bad budget.
func (c Config) Validate() error {
	var errs []error
	if c.Interval <= 0 {
		errs = append(errs, errors.New("budget.interval: must be positive (e.g. 1m)"))
	}
	if c.ReloadInterval < 0 {
		errs = append(errs, errors.New("budget.reload_interval: must not be negative (0 never reloads)"))
	}
	if c.HistoryWeeks < 1 || c.HistoryWeeks > 52 {
		errs = append(errs, fmt.Errorf("budget.history_weeks: %d must be between 1 and 52", c.HistoryWeeks))
	}
	if c.Path != "" {
		if _, err := LoadFile(c.Path); err != nil {
			errs = append(errs, fmt.Errorf("budget.path: %w", err))
		}
	}
	return errors.Join(errs...)
}

// File is the budgets file.
type File struct {
	// Timezone is the IANA zone periods are aligned in unless a budget
	// names its own (default UTC).
	Timezone string   `yaml:"timezone"`
	Budgets  []Budget `yaml:"budgets"`
}

// Budget is one budget as written in the file.
type Budget struct {
	// ID names the budget in metrics, alerts and the status table.
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Scope selects the spend counted; the keys set must all match.
	Scope Scope `yaml:"scope"`
	// Period is daily, weekly (from Monday), monthly, quarterly or annual,
	// aligned to midnight in Timezone.
	Period   string `yaml:"period"`
	Timezone string `yaml:"timezone"`
	// AmountUSD is an exact decimal, e.g. "5000" or "1234.56".
	AmountUSD string `yaml:"amount_usd"`
	// Soft and Hard are thresholds: a fraction of the amount ("0.8",
	// "80%") or an amount in USD ("$4000"). Soft is optional; Hard
	// defaults to the whole amount.
	Soft string `yaml:"soft"`
	Hard string `yaml:"hard"`
	// Forecast alerts when the spend is forecast to exceed the amount
	// before the period ends (default true).
	Forecast *bool `yaml:"forecast"`
}

// Scope selects spend. Org counts everything; the other keys filter and
// may be combined (all must match).
type Scope struct {
	Org      bool   `yaml:"org"`
	Team     string `yaml:"team"`
	Project  string `yaml:"project"`
	APIKey   string `yaml:"api_key"`
	Model    string `yaml:"model"`
	Provider string `yaml:"provider"`
	// Label is key=value on the events' labels.
	Label string `yaml:"label"`
}

// Periods budgets can have.
const (
	Daily     = "daily"
	Weekly    = "weekly"
	Monthly   = "monthly"
	Quarterly = "quarterly"
	Annual    = "annual"
)

// MaxBudgets bounds the file, and with it the per-budget metric series.
const MaxBudgets = 1000

var (
	idPattern       = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
	labelKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,128}$`)
)

// Spec is a validated budget, ready to evaluate.
type Spec struct {
	ID, Name string
	Scope    Scope
	Period   string
	Location *time.Location
	Amount   decimal.Decimal
	// Soft is zero when the budget has none; Hard is never zero.
	Soft, Hard decimal.Decimal
	Forecast   bool
	// LabelKey and LabelValue split Scope.Label.
	LabelKey, LabelValue string
}

// LoadFile reads and validates a budgets file.
func LoadFile(path string) ([]Spec, error) {
	data, err := yamlstrict.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading budgets %q: %w", path, err)
	}
	specs, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("budgets %q: %w", path, err)
	}
	return specs, nil
}

// Parse decodes a budgets file strictly and validates it, reporting every
// problem with its path (budgets[2].soft: …).
func Parse(data []byte) ([]Spec, error) {
	var f File
	if err := yamlstrict.Decode(data, &f); err != nil {
		return nil, err
	}
	return f.Compile()
}

// Compile validates f and returns its budgets in file order.
func (f File) Compile() ([]Spec, error) {
	var p yamlstrict.Problems
	defLoc := time.UTC
	if f.Timezone != "" {
		loc, err := time.LoadLocation(f.Timezone)
		if err != nil {
			p.Add("timezone", "%q is not an IANA time zone (e.g. Europe/Berlin): %v", f.Timezone, err)
		} else {
			defLoc = loc
		}
	}
	if len(f.Budgets) > MaxBudgets {
		p.Add("budgets", "%d budgets are more than the limit of %d", len(f.Budgets), MaxBudgets)
	}
	seen := map[string]int{}
	out := make([]Spec, 0, len(f.Budgets))
	for i, b := range f.Budgets {
		at := fmt.Sprintf("budgets[%d]", i)
		s := Spec{ID: b.ID, Name: b.Name, Scope: b.Scope, Period: b.Period, Location: defLoc, Forecast: b.Forecast == nil || *b.Forecast}
		switch {
		case b.ID == "":
			p.Add(at+".id", "is required (lower-case letters, digits, _ . -)")
		case !idPattern.MatchString(b.ID):
			p.Add(at+".id", "%q must be 1-64 lower-case letters, digits, _ . - starting with a letter or digit", b.ID)
		default:
			if j, dup := seen[b.ID]; dup {
				p.Add(at+".id", "%q is also the id of budgets[%d]; ids must be unique", b.ID, j)
			}
			seen[b.ID] = i
		}
		sc := b.Scope
		filters := 0
		for _, v := range []string{sc.Team, sc.Project, sc.APIKey, sc.Model, sc.Provider, sc.Label} {
			if v != "" {
				filters++
			}
		}
		switch {
		case sc.Org && filters > 0:
			p.Add(at+".scope.org", "counts all spend, so no other scope key may be set with it")
		case !sc.Org && filters == 0:
			p.Add(at+".scope", "is empty; set org: true for all spend, or team, project, api_key, model, provider or label")
		}
		if sc.Label != "" {
			k, v, ok := strings.Cut(sc.Label, "=")
			if !ok || !labelKeyPattern.MatchString(k) || v == "" || strings.ContainsAny(v, `"\`) {
				p.Add(at+".scope.label", "%q must be key=value (key: letters, digits, _ . : / -; value non-empty without quotes or backslashes)", sc.Label)
			}
			s.LabelKey, s.LabelValue = k, v
		}
		switch b.Period {
		case Daily, Weekly, Monthly, Quarterly, Annual:
		case "":
			p.Add(at+".period", "is required: daily, weekly, monthly, quarterly or annual")
		default:
			p.Add(at+".period", "%q must be daily, weekly, monthly, quarterly or annual", b.Period)
		}
		if b.Timezone != "" {
			loc, err := time.LoadLocation(b.Timezone)
			if err != nil {
				p.Add(at+".timezone", "%q is not an IANA time zone (e.g. America/New_York): %v", b.Timezone, err)
			} else {
				s.Location = loc
			}
		}
		amountOK := false
		if b.AmountUSD == "" {
			p.Add(at+".amount_usd", "is required, e.g. \"5000\"")
		} else if d, err := decimal.NewFromString(b.AmountUSD); err != nil || !d.IsPositive() {
			p.Add(at+".amount_usd", "%q must be a positive decimal number of USD, e.g. \"5000\" or \"1234.56\"", b.AmountUSD)
		} else {
			s.Amount, amountOK = d, true
		}
		if b.Soft != "" {
			d, err := threshold(b.Soft, s.Amount)
			if err != nil {
				p.Add(at+".soft", "%v", err)
			} else {
				s.Soft = d
			}
		}
		s.Hard = s.Amount
		if b.Hard != "" {
			d, err := threshold(b.Hard, s.Amount)
			if err != nil {
				p.Add(at+".hard", "%v", err)
			} else {
				s.Hard = d
			}
		}
		if amountOK && !s.Soft.IsZero() && !s.Hard.IsZero() && s.Soft.GreaterThanOrEqual(s.Hard) {
			p.Add(at+".soft", "%s USD must be below the hard threshold %s USD", s.Soft, s.Hard)
		}
		out = append(out, s)
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// threshold parses "0.8", "80%" (fractions of amount) or "$4000" (USD).
func threshold(v string, amount decimal.Decimal) (decimal.Decimal, error) {
	s := strings.TrimSpace(v)
	switch {
	case strings.HasPrefix(s, "$"):
		d, err := decimal.NewFromString(strings.TrimSpace(s[1:]))
		if err != nil || !d.IsPositive() {
			return decimal.Zero, fmt.Errorf("%q must be a positive amount such as \"$4000\"", v)
		}
		return d, nil
	case strings.HasSuffix(s, "%"):
		d, err := decimal.NewFromString(strings.TrimSpace(s[:len(s)-1]))
		if err != nil || !d.IsPositive() || d.GreaterThan(decimal.NewFromInt(1000)) {
			return decimal.Zero, fmt.Errorf("%q must be a percentage of the amount in (0, 1000], such as \"80%%\"", v)
		}
		return amount.Mul(d).Shift(-2), nil
	}
	d, err := decimal.NewFromString(s)
	if err != nil || !d.IsPositive() || d.GreaterThan(decimal.NewFromInt(10)) {
		return decimal.Zero, fmt.Errorf("%q must be a fraction of the amount in (0, 10] such as \"0.8\", a percentage such as \"80%%\", or an amount such as \"$4000\"", v)
	}
	return amount.Mul(d), nil
}

// String is the scope as key=value pairs in a fixed order, as the
// status table, alerts and report show it.
func (s Scope) String() string {
	if s.Org {
		return "org"
	}
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("team", s.Team)
	add("project", s.Project)
	add("api_key", s.APIKey)
	add("provider", s.Provider)
	add("model", s.Model)
	if s.Label != "" {
		parts = append(parts, "label:"+s.Label)
	}
	return strings.Join(parts, ",")
}
