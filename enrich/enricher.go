package enrich

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/schemas"
)

// Config selects the pricing catalog and ownership rules. Empty paths use
// the defaults embedded in the binary.
type Config struct {
	CatalogPath string `koanf:"catalog_path" help:"pricing catalog YAML (empty: the built-in catalog)"`
	OwnersPath  string `koanf:"owners_path" help:"ownership rules YAML (empty: the built-in rules)"`
	// ContractsPath optionally names a file of per-team contracts (a
	// contracts: list), tried before the catalog's own contracts section.
	ContractsPath string `koanf:"contracts_path" help:"per-team contracts YAML, tried before the catalog's own contracts (optional)"`
	// ReloadInterval is how often the files are checked for changes while
	// the stage runs; 0 disables reloading.
	ReloadInterval time.Duration `koanf:"reload_interval" help:"how often the files are checked for changes (0 disables reloading)"`
	// ProviderCostTolerance is how far a provider-reported cost may differ
	// from the catalog cost, as a fraction of the catalog cost, before the
	// event is flagged provider_cost_mismatch (it keeps the provider cost).
	ProviderCostTolerance float64 `koanf:"provider_cost_tolerance" help:"fraction of the catalog cost by which a provider-reported cost may differ before the event is flagged provider_cost_mismatch (0.02 = 2%)"`
	// OutputFormat is how enriched events are written: json (the default,
	// schemas.Enriched) or protobuf (schemas/enriched_v1.proto, with the
	// header content-type: application/x-protobuf; ...). The aggregator
	// reads both; every other subscriber must read the one chosen.
	OutputFormat string `koanf:"output_format" help:"encoding of the enriched topic: json, or protobuf (schemas/enriched_v1.proto; under half the bytes and less CPU; every subscriber must read it)"`
	// SessionTimeout is how long the group waits for a silent replica
	// (killed, or cut off) before giving its partitions of the raw topic to
	// the others; until then they are not read. The broker bounds it (6s
	// to 5m by default).
	SessionTimeout time.Duration `koanf:"session_timeout" help:"how long the group waits for a silent replica before moving its partitions (at least 6s on default brokers)"`
	// InstanceID enables static group membership when set: a replica that
	// restarts with the same id within SessionTimeout gets its partitions
	// back at once, without a rebalance.
	InstanceID string `koanf:"instance_id" help:"static group membership id, unique per replica (empty: dynamic membership)"`
}

// Output formats of the enriched topic.
const (
	FormatJSON     = "json"
	FormatProtobuf = "protobuf"
)

// DefaultConfig returns the embedded catalog and owners, checked every 30s,
// a 2% provider cost tolerance and the Kafka client's 45s session timeout.
func DefaultConfig() Config {
	return Config{ReloadInterval: 30 * time.Second, ProviderCostTolerance: DefaultProviderCostTolerance, OutputFormat: FormatJSON,
		SessionTimeout: 45 * time.Second}
}

// DefaultProviderCostTolerance is enrich.provider_cost_tolerance's default.
const DefaultProviderCostTolerance = float64(pricing.DefaultProviderCostTolerancePPM) / 1e6

// Validate loads both files and reports every problem, each prefixed with
// its config key, so that `aivis config validate` catches a bad catalog
// before the stage starts.
func (c Config) Validate() error {
	var errs []error
	if c.ReloadInterval < 0 {
		errs = append(errs, fmt.Errorf("enrich.reload_interval: must not be negative, got %s", c.ReloadInterval))
	} else if c.ReloadInterval > 0 && c.ReloadInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("enrich.reload_interval: %s is too frequent; use 1s or more, or 0 to disable", c.ReloadInterval))
	}
	switch c.OutputFormat {
	case "", FormatJSON, FormatProtobuf:
	default:
		errs = append(errs, fmt.Errorf("enrich.output_format: %q is not a format; use json or protobuf", c.OutputFormat))
	}
	if c.SessionTimeout != 0 && c.SessionTimeout < time.Second {
		errs = append(errs, fmt.Errorf("enrich.session_timeout: %s must be at least 1s (brokers refuse less than 6s by default)", c.SessionTimeout))
	}
	if err := checkTolerance(c.ProviderCostTolerance); err != nil {
		errs = append(errs, fmt.Errorf("enrich.provider_cost_tolerance: %w", err))
	} else if _, err := c.LoadCatalog(); err != nil {
		errs = append(errs, fmt.Errorf("enrich.catalog_path: %w", err))
	}
	if _, err := c.loadOwners(); err != nil {
		errs = append(errs, fmt.Errorf("enrich.owners_path: %w", err))
	}
	return errors.Join(errs...)
}

func checkTolerance(f float64) error {
	if f != f || f < 0 || f > 1000 {
		return fmt.Errorf("must be a fraction from 0 to 1000 (0.02 is 2%%), got %g", f)
	}
	return nil
}

// LoadCatalog loads the configured catalog and contracts with the
// configured provider cost tolerance; re-rating prices with it too.
func (c Config) LoadCatalog() (*pricing.Catalog, error) {
	cat, err := pricing.Load(c.CatalogPath, c.ContractsPath)
	if err != nil {
		return nil, err
	}
	return cat.WithProviderCostTolerance(c.ProviderCostTolerance)
}

func (c Config) loadOwners() (*Owners, error) {
	if c.OwnersPath == "" {
		return DefaultOwners()
	}
	return LoadOwners(c.OwnersPath)
}

// Load builds an Enricher from the configured files.
func Load(c Config) (*Enricher, error) {
	cat, catErr := c.LoadCatalog()
	own, ownErr := c.loadOwners()
	if err := errors.Join(catErr, ownErr); err != nil {
		return nil, err
	}
	return NewEnricher(cat, own), nil
}

// Enricher attaches price, owner and flags to events. It does no I/O and
// is safe for concurrent use; to change its rules, build a new one.
type Enricher struct {
	catalog *pricing.Catalog
	owners  *Owners
	now     func() time.Time
}

// NewEnricher returns an Enricher over a catalog and ownership rules.
func NewEnricher(c *pricing.Catalog, o *Owners) *Enricher {
	return &Enricher{catalog: c, owners: o, now: time.Now}
}

// Catalog returns the pricing catalog in use.
func (e *Enricher) Catalog() *pricing.Catalog { return e.catalog }

// Enrich returns the enriched form of a valid event. Unpriced events carry
// Flags.Unpriced, cost 0 and cost source "none"; unowned events carry
// Flags.Unowned and team "unattributed". The event's labels and raw usage
// are shared with the result, not copied.
func (e *Enricher) Enrich(ev *schemas.Event) *schemas.Enriched {
	out, _ := e.enrich(ev)
	return out
}

// enrich is Enrich that also returns the quote, whose UnpricedReason the
// stage counts.
func (e *Enricher) enrich(ev *schemas.Event) (*schemas.Enriched, pricing.Quote) {
	out := new(schemas.Enriched)
	return out, e.enrichInto(out, ev, e.now().UTC())
}

// enrichInto is enrich into *out, which it overwrites, for a caller that
// encodes the result at once and reuses *out for the next event.
// The previous result's cost lines are overwritten too: their memory
// holds the new ones. at is the result's enriched_at, in UTC.
func (e *Enricher) enrichInto(out *schemas.Enriched, ev *schemas.Event, at time.Time) pricing.Quote {
	owner, unowned := e.owners.Attribute(ev)
	return e.enrichOwned(out, ev, at, owner, unowned)
}

// enrichOwned is enrichInto with the event's owner worked out already.
// ev may be &out.Event, decoded in place, which saves copying it.
func (e *Enricher) enrichOwned(out *schemas.Enriched, ev *schemas.Event, at time.Time, owner schemas.Owner, unowned bool) pricing.Quote {
	lines := out.Pricing.Lines
	if ev == &out.Event {
		// Every member Enriched adds, set afresh (TestEnrichOwnedInPlace).
		out.Owner, out.Pricing, out.CostPicos, out.CostSource = owner, schemas.Pricing{}, 0, ""
		out.Flags, out.EnrichedAt, out.CanonicalModel = schemas.Flags{Unowned: unowned}, at, ""
	} else {
		*out = schemas.Enriched{Event: *ev, EnrichedAt: at, Owner: owner}
		out.Flags.Unowned = unowned
	}
	q := e.catalog.PriceEnrichedInto(out, lines)
	if len(q.Warnings) > 0 {
		// A full slice expression makes append copy: the event's slice is shared.
		out.Warnings = append(ev.Warnings[:len(ev.Warnings):len(ev.Warnings)], q.Warnings...)
	}
	out.Flags.UsageMismatch = hasWarning(ev.Warnings, WarnProviderTotalMismatch)
	return q
}

// WarnProviderTotalMismatch is the adapters' warning code for a provider
// total that disagrees with the normalized counts.
const WarnProviderTotalMismatch = "provider_total_mismatch"

// hasWarning reports whether a warning with the code ("code: detail") is present.
func hasWarning(ws []string, code string) bool {
	for _, w := range ws {
		if strings.HasPrefix(w, code) && (len(w) == len(code) || w[len(code)] == ':') {
			return true
		}
	}
	return false
}
