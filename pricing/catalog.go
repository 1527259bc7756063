package pricing

import (
	"bytes"
	_ "embed"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aivis-dev/aivis/internal/yamlstrict"
	"github.com/shopspring/decimal"
)

//go:embed defaults/catalog.yaml
var defaultCatalogYAML []byte

// Limits on catalog input.
const (
	// maxPricePerMillion keeps picos per token (price × 1e6) far inside
	// int64; no real token price comes near it.
	maxPricePerMillion = 1_000_000
	// maxGPUHourPrice likewise bounds picos per GPU-hour (price × 1e12).
	maxGPUHourPrice = 1_000_000
	// priceDecimals is the most decimal places a price may have: a price
	// per 1M tokens with six decimals is a whole number of picos per token.
	priceDecimals  = 6
	maxPatternLen  = 1024
	defaultVersion = "unversioned"
)

// catalogFile is the YAML layout of a pricing catalog.
type catalogFile struct {
	CatalogVersion string `yaml:"catalog_version"`
	Currency       string `yaml:"currency"`
	// ProviderAliases maps other spellings of a provider (e.g. "google")
	// to the provider name used by the entries (e.g. "gcp.gemini").
	ProviderAliases map[string]string `yaml:"provider_aliases,omitempty"`
	Models          []modelEntry      `yaml:"models"`
	GPUs            []gpuEntry        `yaml:"gpus,omitempty"`
	// GPUDefaultCategory is the pricing category of gpu.usage events that
	// carry none (default on_demand).
	GPUDefaultCategory string `yaml:"gpu_default_category,omitempty"`
	// Contracts are per-team prices applied after list price.
	Contracts []contractSpec `yaml:"contracts,omitempty"`
	// AzureDeployments maps Azure OpenAI deployment names, which events
	// of an azure provider report as their model, to the model each
	// deployment serves (e.g. my-gpt4o-prod: gpt-4o).
	AzureDeployments map[string]string `yaml:"azure_deployments,omitempty"`
}

type modelEntry struct {
	ID       string `yaml:"id"`
	Provider string `yaml:"provider"`
	// Model is the canonical name of the model the entry prices: events of
	// every name the entry matches are grouped under it. Default: the id
	// after its first "/" (openai/gpt-4o: gpt-4o). An entry that prices a
	// model at other rates (a region's) names that model.
	Model         string    `yaml:"model,omitempty"`
	Match         modelSpec `yaml:"match"`
	EffectiveFrom string    `yaml:"effective_from"`
	Rates         rateSpec  `yaml:"rates"`
	// Tiers are evaluated in order; the first whose condition holds applies.
	Tiers []tierSpec `yaml:"tiers,omitempty"`
	// ServiceTiers modify the rates by Event.ServiceTier (case-insensitive).
	ServiceTiers map[string]serviceTierSpec `yaml:"service_tiers,omitempty"`
	// PerCall holds USD per server tool call, by Usage.ServerToolCalls kind.
	PerCall     map[string]string `yaml:"per_call,omitempty"`
	SourceURL   string            `yaml:"source_url,omitempty"`
	RetrievedAt string            `yaml:"retrieved_at,omitempty"`
}

type modelSpec struct {
	Models  []string `yaml:"models,omitempty"`
	Aliases []string `yaml:"aliases,omitempty"`
	Pattern string   `yaml:"pattern,omitempty"`
}

// price is one effective-dated version of a model entry, with fallbacks,
// tiers and service tiers resolved into rate tables at load.
type price struct {
	id      string
	priceID string
	model   string // the entry's canonical model name
	from    time.Time
	tiers   []tier
	// tables[s][0] holds the rates without a tier and tables[s][i+1] those
	// of tiers[i], under service tier s (0 = standard).
	tables       [][]rateTable
	serviceTiers map[string]int // lower-cased name → index into tables
	// warnings[i] is added to quotes priced at tables[i] (may be nil).
	warnings []string
	perCall  map[string]callRate
}

// versions holds every version of one entry id, ordered by from.
type versions struct {
	id string
	// model is the entry's canonical model name (modelEntry.Model).
	model string
	list  []price
	// snapshots holds the snapshot tokens of the names the entry lists.
	snapshots map[string]bool
	// listedGlobal and listedOther say whether the entry lists global
	// inference profile names and other names.
	listedGlobal, listedOther bool
}

// at returns the version in effect at t: the latest with from <= t. The
// half-open windows [from, next from) follow from the ordering.
func (v *versions) at(t time.Time) (*price, bool) {
	for i := len(v.list) - 1; i >= 0; i-- {
		if !t.Before(v.list[i].from) {
			return &v.list[i], true
		}
	}
	return nil, false
}

type patternRef struct {
	re *regexp.Regexp
	v  *versions
}

type providerIndex struct {
	exact    map[string]*versions
	folded   map[string]*versions // exact names lower-cased; the first entry wins
	alias    map[string]*versions // keys lower-cased
	patterns []patternRef         // file order
}

// Catalog is a parsed, immutable pricing catalog. It is safe for
// concurrent use.
type Catalog struct {
	version         string
	providers       map[string]*providerIndex
	providerAliases map[string]string
	gpus            map[string][]*gpuVersions // keys lower-cased GPU models
	// gpuDefaultCategory prices gpu.usage events without a pricing_category.
	gpuDefaultCategory string
	contracts          []contract // file order
	// azureDeployments maps lower-cased deployment names to models.
	azureDeployments map[string]string
	// costTolerancePPM is how far, in millionths of the catalog cost, a
	// provider-reported cost may differ before it is flagged.
	costTolerancePPM int64
	// resolved remembers lookup's name resolution; each Catalog value,
	// copies too, has its own (newResolveCache).
	resolved *resolveCache
	// entryModels maps model entry ids to their canonical model names.
	entryModels map[string]string
}

// Version returns the catalog_version recorded on every priced event.
func (c *Catalog) Version() string { return c.version }

// LoadCatalog reads and parses a catalog file.
func LoadCatalog(path string) (*Catalog, error) {
	data, err := yamlstrict.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("opening catalog %q: %w", path, err)
	}
	c, err := ParseCatalog(data)
	if err != nil {
		return nil, fmt.Errorf("loading catalog %q: %w", path, err)
	}
	return c, nil
}

// DefaultCatalogYAML returns the text of the embedded default catalog.
func DefaultCatalogYAML() []byte { return bytes.Clone(defaultCatalogYAML) }

// Default returns the catalog embedded in the binary.
func Default() (*Catalog, error) {
	c, err := ParseCatalog(defaultCatalogYAML)
	if err != nil {
		return nil, fmt.Errorf("parsing the embedded default catalog: %w", err)
	}
	return c, nil
}

// Load returns the catalog at catalogPath, or the embedded one when the
// path is empty, with the contracts file at contractsPath (if any) tried
// before the catalog's own contracts.
func Load(catalogPath, contractsPath string) (*Catalog, error) {
	var c *Catalog
	var err error
	if catalogPath == "" {
		c, err = Default()
	} else {
		c, err = LoadCatalog(catalogPath)
	}
	if err != nil || contractsPath == "" {
		return c, err
	}
	data, err := yamlstrict.ReadFile(contractsPath)
	if err != nil {
		return nil, fmt.Errorf("opening contracts %q: %w", contractsPath, err)
	}
	if c, err = c.WithContracts(data); err != nil {
		return nil, fmt.Errorf("loading contracts %q: %w", contractsPath, err)
	}
	return c, nil
}

// ParseCatalog parses and validates a catalog document. It reports every
// problem it finds, each prefixed with the key path of the offending value.
func ParseCatalog(data []byte) (*Catalog, error) {
	var f catalogFile
	if err := yamlstrict.Decode(data, &f); err != nil {
		return nil, fmt.Errorf("decoding catalog YAML: %w", err)
	}
	p := yamlstrict.Problems{}
	if strings.TrimSpace(f.CatalogVersion) == "" {
		p.Add("catalog_version", "is required (a label recorded on every priced event, e.g. \"2026-11-20.1\")")
	}
	if f.Currency != "USD" {
		p.Add("currency", "must be USD, got %q", f.Currency)
	}
	c := &Catalog{
		version:          f.CatalogVersion,
		providers:        map[string]*providerIndex{},
		entryModels:      map[string]string{},
		providerAliases:  map[string]string{},
		gpus:             map[string][]*gpuVersions{},
		costTolerancePPM: DefaultProviderCostTolerancePPM,
	}
	for from, to := range f.AzureDeployments {
		lfrom, to := strings.ToLower(strings.TrimSpace(from)), strings.TrimSpace(to)
		if lfrom == "" || to == "" {
			p.Add("azure_deployments", "deployment and model names must not be empty (e.g. my-gpt4o-prod: gpt-4o)")
			continue
		}
		if c.azureDeployments == nil {
			c.azureDeployments = map[string]string{}
		}
		c.azureDeployments[lfrom] = to
	}
	if c.version == "" {
		c.version = defaultVersion
	}
	for from, to := range f.ProviderAliases {
		from, to = strings.ToLower(strings.TrimSpace(from)), strings.ToLower(strings.TrimSpace(to))
		if from == "" || to == "" {
			p.Add("provider_aliases", "names must not be empty")
			continue
		}
		c.providerAliases[from] = to
	}
	c.buildModels(f.Models, &p)
	c.buildGPUs(f.GPUs, f.GPUDefaultCategory, &p)
	c.contracts = parseContracts(&p, "contracts", f.Contracts)
	if err := p.Err(); err != nil {
		return nil, err
	}
	// Names resolve the same from here on.
	c.resolved = newResolveCache()
	return c, nil
}

func (c *Catalog) buildModels(entries []modelEntry, p *yamlstrict.Problems) {
	type idState struct {
		v        *versions
		provider string
		pattern  bool
	}
	ids := map[string]*idState{}
	var order []*idState
	owner := map[string]string{} // provider\x00name or alias → id, to catch ambiguity
	for i, e := range entries {
		path := fmt.Sprintf("models[%d]", i)
		if e.ID == "" {
			p.Add(path+".id", "is required (e.g. \"openai/gpt-4o\")")
			continue
		}
		path = fmt.Sprintf("models[%d](%s)", i, e.ID)
		prov := strings.ToLower(strings.TrimSpace(e.Provider))
		if prov == "" {
			p.Add(path+".provider", "is required (e.g. openai, anthropic, aws.bedrock)")
			continue
		}
		from, err := time.Parse(time.RFC3339, e.EffectiveFrom)
		if err != nil {
			p.Add(path+".effective_from", "must be an RFC 3339 time such as 2025-09-29T00:00:00Z, got %q", e.EffectiveFrom)
			continue
		}
		checkRetrievedAt(p, path, e.RetrievedAt)
		pr, ok := parseEntryPrices(p, path, e)
		if !ok {
			continue
		}
		pr.id = e.ID
		pr.from = from.UTC()
		pr.priceID = e.ID + "@" + pr.from.Format(time.RFC3339)

		model := entryModel(e)
		pr.model = model
		st := ids[e.ID]
		if st == nil {
			st = &idState{v: &versions{id: e.ID, model: model}, provider: prov}
			ids[e.ID] = st
			order = append(order, st)
			c.entryModels[e.ID] = model
		} else if st.provider != prov {
			p.Add(path+".provider", "is %q but an earlier entry with id %q has provider %q; one id belongs to one provider", prov, e.ID, st.provider)
			continue
		} else if st.v.model != model {
			p.Add(path+".model", "is %q but an earlier entry with id %q names model %q; every version of an id names one model", model, e.ID, st.v.model)
			continue
		}
		for _, v := range st.v.list {
			if v.from.Equal(pr.from) {
				p.Add(path+".effective_from", "%s is already used by another entry with id %q; give each version its own date", e.EffectiveFrom, e.ID)
			}
		}
		st.v.list = append(st.v.list, pr)

		idx := c.providers[prov]
		if idx == nil {
			idx = &providerIndex{exact: map[string]*versions{}, folded: map[string]*versions{}, alias: map[string]*versions{}}
			c.providers[prov] = idx
		}
		if len(e.Match.Models) == 0 && len(e.Match.Aliases) == 0 && e.Match.Pattern == "" {
			p.Add(path+".match", "needs at least one of models, aliases or pattern")
		}
		for j, name := range e.Match.Models {
			if name == "" {
				p.Add(fmt.Sprintf("%s.match.models[%d]", path, j), "must not be empty")
				continue
			}
			key := prov + "\x00=" + name
			if other, dup := owner[key]; dup && other != e.ID {
				p.Add(fmt.Sprintf("%s.match.models[%d]", path, j), "%q is already matched by %q for provider %q", name, other, prov)
				continue
			}
			owner[key] = e.ID
			idx.exact[name] = st.v
			if l := strings.ToLower(name); idx.folded[l] == nil {
				idx.folded[l] = st.v
			}
			st.v.noteListed(name)
		}
		for j, name := range e.Match.Aliases {
			lname := strings.ToLower(name)
			if lname == "" {
				p.Add(fmt.Sprintf("%s.match.aliases[%d]", path, j), "must not be empty")
				continue
			}
			key := prov + "\x00~" + lname
			if other, dup := owner[key]; dup && other != e.ID {
				p.Add(fmt.Sprintf("%s.match.aliases[%d]", path, j), "%q is already an alias of %q for provider %q", name, other, prov)
				continue
			}
			owner[key] = e.ID
			idx.alias[lname] = st.v
			st.v.noteListed(lname)
		}
		if e.Match.Pattern != "" {
			if len(e.Match.Pattern) > maxPatternLen {
				p.Add(path+".match.pattern", "is longer than %d bytes", maxPatternLen)
				continue
			}
			re, err := regexp.Compile(e.Match.Pattern)
			if err != nil {
				p.Add(path+".match.pattern", "is not a valid regular expression: %v", err)
				continue
			}
			idx.patterns = append(idx.patterns, patternRef{re: re, v: st.v})
		}
	}
	for _, st := range order {
		sort.Slice(st.v.list, func(a, b int) bool { return st.v.list[a].from.Before(st.v.list[b].from) })
	}
}

// entryModel is the canonical model name of an entry: its model, else
// its id after the first "/".
func entryModel(e modelEntry) string {
	if m := strings.TrimSpace(e.Model); m != "" {
		return m
	}
	if _, rest, ok := strings.Cut(e.ID, "/"); ok && rest != "" {
		return rest
	}
	return e.ID
}

func checkRetrievedAt(p *yamlstrict.Problems, path, s string) {
	if s == "" {
		return
	}
	if _, err := time.Parse(time.DateOnly, s); err == nil {
		return
	}
	if _, err := time.Parse(time.RFC3339, s); err == nil {
		return
	}
	p.Add(path+".retrieved_at", "must be a date (2026-11-20) or an RFC 3339 time, got %q", s)
}

// parseEntryPrices builds an entry's rate tables: for each service tier
// (standard first) the base rates with that service tier's rates merged
// over them, and for each tier those with the tier's rates merged over in
// turn; fallbacks apply after merging, then the service tier's multiply.
func parseEntryPrices(p *yamlstrict.Problems, path string, e modelEntry) (price, bool) {
	var pr price
	base, ok := resolveRates(p, path+".rates", e.Rates)
	tiers, tiersOK := parseTiers(p, path, e.Tiers)
	perCall, callsOK := parsePerCall(p, path, e.PerCall)
	if !ok || !tiersOK || !callsOK {
		return pr, false
	}
	pr.tiers, pr.perCall = tiers, perCall
	names := make([]string, 0, len(e.ServiceTiers))
	for n := range e.ServiceTiers {
		names = append(names, n)
	}
	sort.Strings(names)
	build := func(svcPath string, spec rateSpec, factor *decimal.Decimal) ([]rateTable, bool) {
		ts := make([]rateTable, 0, len(tiers)+1)
		t0, good := base, true
		if svcPath != "" {
			t0, good = resolveRates(p, svcPath+".rates", spec)
		}
		ts = append(ts, t0)
		for i, tspec := range e.Tiers {
			t, g := resolveRates(p, fmt.Sprintf("%s.tiers[%d].rates", path, i), spec.merged(tspec.Rates))
			good = good && g
			ts = append(ts, t)
		}
		if !good || factor == nil {
			return ts, good
		}
		for i := range ts {
			scaled, key, exact := scaleTable(ts[i], *factor)
			if !exact {
				where := "the base rates"
				if i > 0 {
					where = fmt.Sprintf("tier %q", tiers[i-1].name)
				}
				p.Add(svcPath+".multiply", "%s × %s (%s) is not a whole number of pico-USD per token (more than 6 decimals per 1M); use a factor that keeps prices exact or give rates instead",
					factor.String(), key, where)
				return ts, false
			}
			ts[i] = scaled
		}
		return ts, true
	}
	std, good := build("", e.Rates, nil)
	pr.tables = append(pr.tables, std)
	for _, n := range names {
		s := e.ServiceTiers[n]
		sp := path + ".service_tiers." + n
		ln := strings.ToLower(strings.TrimSpace(n))
		if ln == "" {
			p.Add(path+".service_tiers", "service tier names must not be empty")
			good = false
			continue
		}
		if pr.serviceTiers == nil {
			pr.serviceTiers = map[string]int{}
		}
		if _, dup := pr.serviceTiers[ln]; dup {
			p.Add(sp, "is listed twice (names are case-insensitive)")
			good = false
			continue
		}
		var factor *decimal.Decimal
		if s.Multiply != nil {
			f, ok := parseMultiply(p, sp+".multiply", *s.Multiply)
			if !ok {
				good = false
				continue
			}
			factor = &f
		}
		ts, ok := build(sp, e.Rates.merged(s.Rates), factor)
		if !ok {
			good = false
			continue
		}
		if s.Warning != "" {
			if !strings.Contains(s.Warning, ": ") {
				p.Add(sp+".warning", "%q must read \"code: detail\", e.g. \"provisioned_throughput: ...\"", s.Warning)
				good = false
				continue
			}
			for len(pr.warnings) < len(pr.tables) {
				pr.warnings = append(pr.warnings, "")
			}
			pr.warnings = append(pr.warnings, s.Warning)
		}
		pr.serviceTiers[ln] = len(pr.tables)
		pr.tables = append(pr.tables, ts)
	}
	return pr, good
}

func parsePrice(p *yamlstrict.Problems, path, s string, max int64) (decimal.Decimal, bool) {
	d, err := decimal.NewFromString(strings.TrimSpace(s))
	if err != nil {
		p.Add(path, "%q is not a decimal number", s)
		return d, false
	}
	if d.Sign() < 0 {
		p.Add(path, "%s is negative; prices must be zero or more", s)
		return d, false
	}
	if d.GreaterThan(decimal.NewFromInt(max)) {
		p.Add(path, "%s is above the limit of %d; check the unit", s, max)
		return d, false
	}
	if !d.Shift(priceDecimals).IsInteger() {
		p.Add(path, "%s has more than %d decimal places; costs are kept exact in pico-USD only up to that precision", s, priceDecimals)
		return d, false
	}
	return d, true
}

// resolveProvider returns the provider index for an event's provider,
// trying the exact spelling, then lower case, then the aliases.
func (c *Catalog) resolveProvider(provider string) (string, *providerIndex) {
	if idx, ok := c.providers[provider]; ok {
		return provider, idx
	}
	l := strings.ToLower(provider)
	if idx, ok := c.providers[l]; ok {
		return l, idx
	}
	if to, ok := c.providerAliases[l]; ok {
		if idx, ok := c.providers[to]; ok {
			return to, idx
		}
	}
	return "", nil
}

// KnownProvider returns the catalog's name for provider, or "other"; it
// keeps metric label cardinality bounded by the catalog, not by input.
func (c *Catalog) KnownProvider(provider string) string {
	name, idx := c.resolveProvider(provider)
	if idx == nil {
		return "other"
	}
	return name
}

// lookup finds the price of (provider, model) at t (see resolve), the
// version effective at t, and the warnings of a fallback match.
func (c *Catalog) lookup(provider, model string, t time.Time) (*price, []string, bool) {
	r := c.resolveCached(provider, model)
	if r.v == nil {
		return nil, nil, false
	}
	p, ok := r.v.at(t)
	return p, r.warnings, ok
}

// lookupVersions finds the entry that lists or matches the name exactly as
// given (no normalization), or nil; Diff compares catalogs by it.
func (c *Catalog) lookupVersions(provider, model string) *versions {
	_, idx := c.resolveProvider(provider)
	if idx == nil {
		return nil
	}
	v, _ := idx.find(model)
	return v
}
