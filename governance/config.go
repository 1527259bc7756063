package governance

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/internal/yamlstrict"
)

// Config is the governance section of aivis's configuration. The policy
// (who may use what, where) lives in its own file, Path, reloaded when it
// changes; the thresholds of the signals live here.
type Config struct {
	// Path is the policy YAML file; empty approves everything, allows
	// every region and requires no labels (the usage signals still run).
	Path string `koanf:"path" help:"governance policy YAML file, see docs/governance.md (empty: everything is approved)"`
	// Enabled runs the signal evaluator with aggregate.
	Enabled bool `koanf:"enabled" help:"run the governance and security signal evaluator with aggregate"`
	// Interval is how often the signals are evaluated.
	Interval time.Duration `koanf:"interval" help:"how often the governance signals are evaluated"`
	// ReloadInterval is how often the policy file is checked for changes.
	ReloadInterval time.Duration `koanf:"reload_interval" help:"how often the policy file is checked for changes (0: never reloaded)"`
	// Window is the span of recent usage each evaluation looks at; a
	// signal that no longer shows in it resolves.
	Window time.Duration `koanf:"window" help:"recent usage each evaluation looks at; a signal absent from it resolves"`
	// History is how far back a key's sources, regions and activity are
	// remembered for the first-seen and dormant signals.
	History time.Duration `koanf:"history" help:"how far back first-seen and dormant signals look for earlier use of a key"`
	// DormantAfter is how long a key must have been silent before heavy
	// use counts as a wake-up.
	DormantAfter time.Duration `koanf:"dormant_after" help:"silence after which a key's heavy use is a dormant-key wake-up"`
	// DormantWakeUSD is the spend within Window that counts as heavy use
	// of a key that was dormant.
	DormantWakeUSD string `koanf:"dormant_wake_usd" help:"spend within the window that makes a dormant key's wake-up a signal (decimal USD)"`
	// AuthFailureBurst is how many rejected producer authentications from
	// one source address within Window make a burst.
	AuthFailureBurst int `koanf:"auth_failure_burst" help:"rejected producer authentications from one address within the window that make a burst"`
	// UnattributedShare is the share of spend (0..1) booked to no team
	// within Window above which a signal fires, once the window's spend is
	// at least UnattributedMinUSD.
	UnattributedShare  float64 `koanf:"unattributed_share" help:"share of the window's spend with no owner above which a signal fires (0..1)"`
	UnattributedMinUSD string  `koanf:"unattributed_min_usd" help:"least spend in the window for the unattributed share to be judged (decimal USD)"`
	// MaxValuesPerDimension bounds the distinct end users and tags enrich
	// passes on per hour; the rest are stored as "_other".
	MaxValuesPerDimension int `koanf:"max_values_per_dimension" help:"distinct end users and tags enrich keeps per hour; the rest become _other"`
	// MaxSignals bounds the incidents one evaluation may open per signal,
	// and so the metric series and alerts a flood can cause.
	MaxSignals int `koanf:"max_signals" help:"incidents one evaluation may open per signal; the rest are counted in a metric"`
}

// DefaultConfig evaluates every minute over the last 15 minutes.
func DefaultConfig() Config {
	return Config{
		Interval: time.Minute, ReloadInterval: 30 * time.Second, Window: 15 * time.Minute,
		History: 30 * 24 * time.Hour, DormantAfter: 7 * 24 * time.Hour, DormantWakeUSD: "10",
		AuthFailureBurst: 20, UnattributedShare: 0.2, UnattributedMinUSD: "1",
		MaxValuesPerDimension: 1000, MaxSignals: 100,
	}
}

// Validate reports every problem with its key path; a configured policy
// file is loaded, so that `aivis config validate` catches a bad policy.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("governance.%s: "+format, append([]any{key}, args...)...))
	}
	if c.Interval <= 0 {
		bad("interval", "must be positive (e.g. 1m)")
	}
	if c.ReloadInterval < 0 {
		bad("reload_interval", "must not be negative (0 never reloads)")
	}
	if c.Window <= 0 {
		bad("window", "must be positive (e.g. 15m)")
	}
	if c.History < c.Window {
		bad("history", "%s must be at least the window (%s)", c.History, c.Window)
	}
	if c.DormantAfter <= 0 || c.DormantAfter >= c.History {
		bad("dormant_after", "%s must be positive and shorter than history (%s)", c.DormantAfter, c.History)
	}
	for _, d := range []struct{ key, v string }{{"dormant_wake_usd", c.DormantWakeUSD}, {"unattributed_min_usd", c.UnattributedMinUSD}} {
		if v, err := decimal.NewFromString(d.v); err != nil || v.IsNegative() {
			bad(d.key, "%q is not a non-negative decimal number of USD (e.g. \"10\")", d.v)
		}
	}
	if c.AuthFailureBurst < 1 {
		bad("auth_failure_burst", "%d must be at least 1", c.AuthFailureBurst)
	}
	if c.UnattributedShare <= 0 || c.UnattributedShare > 1 {
		bad("unattributed_share", "%g must be above 0 and at most 1", c.UnattributedShare)
	}
	if c.MaxValuesPerDimension < 1 {
		bad("max_values_per_dimension", "%d must be at least 1", c.MaxValuesPerDimension)
	}
	if c.MaxSignals < 1 {
		bad("max_signals", "%d must be at least 1", c.MaxSignals)
	}
	if c.Path != "" {
		if _, err := LoadPolicy(c.Path); err != nil {
			errs = append(errs, fmt.Errorf("governance.path: %w", err))
		}
	}
	return errors.Join(errs...)
}

// File is the policy file.
type File struct {
	// Default applies to every team without its own rules (and to
	// unattributed usage).
	Default Rules `yaml:"default"`
	// Teams are per-team rules; a list a team leaves empty is taken from
	// Default.
	Teams map[string]Rules `yaml:"teams"`
	// DataClasses restrict regions by the data_class label of an event,
	// on top of the team's regions: both must allow the region.
	DataClasses map[string]DataClass `yaml:"data_classes"`
	// RequiredLabels must be on every llm.request event.
	RequiredLabels []string `yaml:"required_labels"`
}

// Rules say which providers, models and provider regions a team may use.
// Entries are exact names or glob patterns (gpt-4o*, claude-*-sonnet-*,
// us-*). An empty allow list allows everything; deny wins over allow.
type Rules struct {
	Providers ListRule `yaml:"providers"`
	Models    ListRule `yaml:"models"`
	// Regions lists the provider regions allowed; empty allows every
	// region. Usage whose region is not reported is never out of region.
	Regions []string `yaml:"regions"`
}

// ListRule is an allow and a deny list of names or patterns.
type ListRule struct {
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
}

// DataClass restricts where data of one class may go.
type DataClass struct {
	Regions []string `yaml:"regions"`
}

// LabelDataClass is the event label that names its data class.
const LabelDataClass = "data_class"

var (
	nameRe  = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,128}$`)
	labelRe = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,128}$`)
)

// LoadPolicy reads and validates a policy file.
func LoadPolicy(file string) (*Policy, error) {
	data, err := yamlstrict.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading governance policy %q: %w", file, err)
	}
	p, err := ParsePolicy(data)
	if err != nil {
		return nil, fmt.Errorf("governance policy %q: %w", file, err)
	}
	return p, nil
}

// ParsePolicy decodes a policy strictly and validates it, reporting every
// problem with its path (teams.search.models.allow[1]: …).
func ParsePolicy(data []byte) (*Policy, error) {
	var f File
	if err := yamlstrict.Decode(data, &f); err != nil {
		return nil, err
	}
	return f.Compile()
}

// Compile validates f and returns the policy it describes.
func (f File) Compile() (*Policy, error) {
	var p yamlstrict.Problems
	checkList := func(at string, list []string) {
		for i, pat := range list {
			if pat == "" || strings.TrimSpace(pat) != pat {
				p.Add(fmt.Sprintf("%s[%d]", at, i), "%q must be a non-empty name or pattern without surrounding spaces", pat)
				continue
			}
			if _, err := path.Match(pat, ""); err != nil {
				p.Add(fmt.Sprintf("%s[%d]", at, i), "%q is not a valid pattern (use * and ? and [a-z]): %v", pat, err)
			}
		}
	}
	checkRules := func(at string, r Rules) {
		checkList(at+".providers.allow", r.Providers.Allow)
		checkList(at+".providers.deny", r.Providers.Deny)
		checkList(at+".models.allow", r.Models.Allow)
		checkList(at+".models.deny", r.Models.Deny)
		checkList(at+".regions", r.Regions)
	}
	checkRules("default", f.Default)
	for _, team := range sortedKeys(f.Teams) {
		if !nameRe.MatchString(team) {
			p.Add("teams", "%q is not a team name (letters, digits and _ . : / -)", team)
		}
		checkRules("teams."+team, f.Teams[team])
	}
	for _, dc := range sortedKeys(f.DataClasses) {
		if !nameRe.MatchString(dc) {
			p.Add("data_classes", "%q is not a data class name (letters, digits and _ . : / -)", dc)
		}
		if len(f.DataClasses[dc].Regions) == 0 {
			p.Add("data_classes."+dc+".regions", "is required: list the regions data of this class may go to")
		}
		checkList("data_classes."+dc+".regions", f.DataClasses[dc].Regions)
	}
	for i, l := range f.RequiredLabels {
		if !labelRe.MatchString(l) {
			p.Add(fmt.Sprintf("required_labels[%d]", i), "%q is not a label name (letters, digits and _ . : / -)", l)
		}
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return &Policy{file: f}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
