package pricing

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// Warning codes of prices that are a fallback, not an exact match: the
// event is priced, but not at a price the catalog states for exactly what
// the event reports. Each reads "code: detail" in the event's warnings.
const (
	// WarnUnknownServiceTier: the event's service tier is not one the entry
	// prices; the standard rates were used.
	WarnUnknownServiceTier = "unknown_service_tier"
	// WarnSnapshotFallback: the model name carries a snapshot (a date or
	// version) that no name of the matched entry lists; a pattern priced it
	// as another snapshot of the model.
	WarnSnapshotFallback = "snapshot_fallback"
	// WarnRegionalPriceMissing: a regional (in-region or geography
	// inference profile) id was priced at a global-endpoint price because
	// the catalog has no regional price for it.
	WarnRegionalPriceMissing = "regional_price_missing"
	// WarnProviderCostMismatch: the provider-reported cost, which the event
	// keeps, differs from the catalog cost by more than the tolerance.
	WarnProviderCostMismatch = "provider_cost_mismatch"
)

// FallbackCodes are the warning codes that make a priced event's cost a
// fallback rather than an exact catalog or provider price: the four above,
// a provider cost ignored for the catalog one, and server tool calls left
// out. (A cost too large to represent leaves the event unpriced instead.)
// The set is fixed, so it bounds metric labels.
var FallbackCodes = []string{
	WarnUnknownServiceTier, WarnSnapshotFallback, WarnRegionalPriceMissing, WarnProviderCostMismatch,
	WarnProviderCostIgnored, WarnUnpricedCall,
}

// FallbackCode returns the code of a warning ("code: detail") when it is
// one of FallbackCodes, else "".
func FallbackCode(warning string) string {
	code, _, _ := strings.Cut(warning, ":")
	for _, c := range FallbackCodes {
		if code == c {
			return c
		}
	}
	return ""
}

// standardTiers are service tier names that mean the standard rates.
var standardTiers = map[string]bool{"standard": true, "default": true, "on_demand": true, "on-demand": true}

// NormalizeModel rewrites the provider-specific forms of a model name into
// the plain name catalogs list:
//
//   - Bedrock ARNs of foundation models and inference profiles
//     (arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-…,
//     arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-…)
//     become the model or profile id, which keeps the geography prefix
//     that selects a regional price;
//   - Vertex resource names (publishers/google/models/gemini-2.5-pro,
//     projects/P/locations/L/publishers/google/models/gemini-2.5-flash-001,
//     models/gemini-2.5-pro) become the name after the last "models/";
//   - Vertex version suffixes (claude-sonnet-4-5@20250929) become the
//     dated name (claude-sonnet-4-5-20250929).
//
// Other names, including opaque ids such as application inference
// profiles, come back unchanged apart from surrounding spaces.
func NormalizeModel(model string) string {
	m := strings.TrimSpace(model)
	if rest, ok := bedrockARNResource(m); ok {
		if typ, id, ok := strings.Cut(rest, "/"); ok && (typ == "foundation-model" || typ == "inference-profile") && id != "" {
			m = id
		}
	}
	if i := strings.LastIndex(m, "models/"); i >= 0 && (i == 0 || m[i-1] == '/') && i+len("models/") < len(m) {
		m = m[i+len("models/"):]
	}
	if at := strings.LastIndexByte(m, '@'); at > 0 && vertexVersion.MatchString(m[at+1:]) {
		m = m[:at] + "-" + m[at+1:]
	}
	return m
}

var vertexVersion = regexp.MustCompile(`^\d{8}$`)

// bedrockARNResource returns the resource part ("type/id") of a Bedrock
// ARN: arn:PARTITION:bedrock:REGION:ACCOUNT:RESOURCE. The id may contain
// colons (":0"), so only the first five separate fields.
func bedrockARNResource(s string) (string, bool) {
	if !strings.HasPrefix(s, "arn:") {
		return "", false
	}
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[2] != "bedrock" {
		return "", false
	}
	return parts[5], true
}

// bedrockGeos are the geography prefixes of Bedrock cross-region
// inference profiles priced at regional rates; "global." is the global one.
var bedrockGeos = []string{"us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov."}

// bedrockGlobal returns the global inference profile id of a regional
// Bedrock id (us.anthropic.x → global.anthropic.x, anthropic.x →
// global.anthropic.x), or false for an id that is already global or has
// no model vendor prefix.
func bedrockGlobal(id string) (string, bool) {
	l := strings.ToLower(id)
	if strings.HasPrefix(l, "global.") {
		return "", false
	}
	for _, g := range bedrockGeos {
		if strings.HasPrefix(l, g) {
			l = l[len(g):]
			break
		}
	}
	if !strings.Contains(l, ".") {
		return "", false
	}
	return "global." + l, true
}

// snapshotToken matches the snapshot part of a model name: a date
// (20250929, 2024-08-06, 09-2025, 0613, 2407) or a three-digit version
// (-001).
var snapshotToken = regexp.MustCompile(`(?:^|[-@_.:])(\d{8}|\d{4}-\d{2}-\d{2}|\d{2}-\d{4}|\d{2}-\d{2}|\d{4}|\d{3})(?:$|[-@_.:v])`)

// snapshotOf returns a model name's snapshot token, or "".
func snapshotOf(name string) string {
	m := snapshotToken.FindStringSubmatch(name)
	if m == nil {
		return ""
	}
	return m[1]
}

// matchKind says how a model name found its entry.
type matchKind int

const (
	matchNone matchKind = iota
	matchExact
	matchAlias
	matchPattern
)

// resolved is the entry that prices an event's model, with the warnings
// that say where the match is a fallback.
type resolved struct {
	v        *versions
	name     string // the normalized name that matched
	warnings []string
}

// resolve finds the entry that prices (provider, model): the Azure
// deployment mapping, then NormalizeModel, then the provider's names
// (exact, case-insensitive, alias, pattern); for Bedrock a regional id
// with no price of its own falls back to its global profile's price, with
// a warning.
func (c *Catalog) resolve(provider, model string) resolved {
	prov, idx := c.resolveProvider(provider)
	if idx == nil {
		return resolved{}
	}
	name := strings.TrimSpace(model)
	if len(c.azureDeployments) > 0 && strings.HasPrefix(strings.ToLower(provider), "azure") {
		if to, ok := c.azureDeployments[strings.ToLower(name)]; ok {
			name = to
		}
	}
	name = NormalizeModel(name)
	v, how := idx.find(name)
	r := resolved{v: v, name: name}
	if prov == "aws.bedrock" {
		if global, ok := bedrockGlobal(name); ok {
			gv, _ := idx.find(global)
			switch {
			case v == nil && gv != nil:
				r.v, how = gv, matchPattern
				r.warnings = append(r.warnings, fmt.Sprintf("%s: no regional price for %q; priced at entry %s for %s", WarnRegionalPriceMissing, name, gv.id, global))
			case v != nil && v == gv && v.globalOnly():
				r.warnings = append(r.warnings, fmt.Sprintf("%s: %q is regional but entry %s lists only global profiles; priced at the global rates", WarnRegionalPriceMissing, name, v.id))
			}
		}
	}
	if r.v != nil && how == matchPattern {
		if s := snapshotOf(name); s != "" && !r.v.snapshots[s] {
			r.warnings = append(r.warnings, fmt.Sprintf("%s: %q matched the pattern of entry %s, which lists no %s snapshot", WarnSnapshotFallback, name, r.v.id, s))
		}
	}
	return r
}

// resolveCache remembers resolve's answers for the (provider, model)
// pairs a catalog has seen, so that the stream, where a few pairs repeat,
// pays for name normalization and matching once per pair. It belongs to
// one Catalog value: a new catalog (a reload) starts empty.
type resolveCache struct {
	mu sync.RWMutex
	m  map[resolveKey]*resolveEntry
	// front holds the pairs last seen, in slots picked by where the
	// names' bytes are: the stream's decoders intern names, so the events
	// of one pair mostly share that memory, and a slot costs a pointer
	// load and two string comparisons where the map hashes both names and
	// takes the lock. A slot is only a hint; its names are compared in
	// full.
	front [resolveFrontSize]atomic.Pointer[resolveEntry]
}

type resolveEntry struct {
	provider, model string
	r               resolved
}

const (
	resolveFrontBits = 6
	resolveFrontSize = 1 << resolveFrontBits
)

// frontSlot is the front slot of (provider, model), from the names'
// addresses and lengths.
func frontSlot(provider, model string) uint64 {
	h := schemas.MemoryWord(provider)*31 + schemas.MemoryWord(model)
	return (h * 0x9e3779b97f4a7c15) >> (64 - resolveFrontBits)
}

type resolveKey struct{ provider, model string }

// maxResolveCache bounds the pairs kept; past it, new pairs are resolved
// every time, so that producers sending arbitrary names cost no memory.
const maxResolveCache = 4096

func newResolveCache() *resolveCache { return &resolveCache{m: map[resolveKey]*resolveEntry{}} }

// resolveCached is resolve through c's cache. The warnings of the result
// are shared: callers copy them, never append to them in place.
func (c *Catalog) resolveCached(provider, model string) resolved {
	rc := c.resolved
	if rc == nil {
		return c.resolve(provider, model)
	}
	slot := &rc.front[frontSlot(provider, model)]
	if e := slot.Load(); e != nil && e.provider == provider && e.model == model {
		return e.r
	}
	k := resolveKey{provider, model}
	rc.mu.RLock()
	e, ok := rc.m[k]
	rc.mu.RUnlock()
	if !ok {
		// Copies: a caller's names may share memory that it reuses.
		e = &resolveEntry{provider: strings.Clone(provider), model: strings.Clone(model), r: c.resolve(provider, model)}
		rc.mu.Lock()
		if len(rc.m) < maxResolveCache {
			rc.m[resolveKey{e.provider, e.model}] = e
		}
		rc.mu.Unlock()
	}
	slot.Store(e)
	return e.r
}

// find looks a model name up: exact spelling, then case-insensitively
// among the listed names and aliases, then the first matching pattern
// (tried on the name as given and lower-cased).
func (idx *providerIndex) find(name string) (*versions, matchKind) {
	if v := idx.exact[name]; v != nil {
		return v, matchExact
	}
	l := strings.ToLower(name)
	if v := idx.folded[l]; v != nil {
		return v, matchExact
	}
	if v := idx.alias[l]; v != nil {
		return v, matchAlias
	}
	for _, pr := range idx.patterns {
		if pr.re.MatchString(name) || (l != name && pr.re.MatchString(l)) {
			return pr.v, matchPattern
		}
	}
	return nil, matchNone
}

// noteListed records a name the entry lists, for the snapshot and
// regional checks.
func (v *versions) noteListed(name string) {
	if s := snapshotOf(name); s != "" {
		if v.snapshots == nil {
			v.snapshots = map[string]bool{}
		}
		v.snapshots[s] = true
	}
	if strings.HasPrefix(strings.ToLower(name), "global.") {
		v.listedGlobal = true
	} else {
		v.listedOther = true
	}
}

// globalOnly reports whether every name the entry lists is a global
// inference profile: its prices are the global endpoint's.
func (v *versions) globalOnly() bool { return v.listedGlobal && !v.listedOther }

// CanonicalModel returns the one name that events of provider's model are
// grouped under, and whether a catalog entry gives it: the model name of
// the entry that matches the name (at any date; see modelEntry.Model),
// else the name normalized as matching does (the Azure deployment
// mapping, NormalizeModel) and lower-cased, because matching ignores case.
// gpt-4o, GPT-4o, gpt-4o-2024-08-06 and openai/gpt-4o are all gpt-4o.
func (c *Catalog) CanonicalModel(provider, model string) (string, bool) {
	r := c.resolve(provider, model)
	if r.v != nil {
		return r.v.model, true
	}
	name := r.name
	if name == "" {
		name = NormalizeModel(model)
	}
	return strings.ToLower(name), false
}

// Resolves reports whether the catalog prices provider's model at t, and
// the entry id that does (empty when none).
func (c *Catalog) Resolves(provider, model string, t time.Time) (string, bool) {
	r := c.resolve(provider, model)
	if r.v == nil {
		return "", false
	}
	p, ok := r.v.at(t)
	if !ok {
		return "", false
	}
	return p.priceID, true
}
