// Package pricing is the pricing engine: it prices an event's usage from a
// versioned catalog of list prices, tiers, service tiers, per-call fees and
// per-team contracts. It has no Kafka or ClickHouse in it; the enrich stage
// and re-rating drive it.
//
// A catalog enters as YAML (Load, LoadCatalog, ParseCatalog; Default is the
// one embedded from defaults/catalog.yaml; ImportLiteLLM and
// ImportGenAIPrices convert LiteLLM's and genai-prices' data into one) and
// is immutable once parsed: to change prices, load a new one. Diff lists
// where two catalogs disagree; Exceptions (defaults/exceptions.yaml) are
// the reviewed disagreements; CheckCatalog warns about stale provenance. Events enter as schemas.Event values and leave
// priced as a Quote (Catalog.PriceFor), whose cost lines always sum to its
// cost.
//
// Model names are normalized before matching (NormalizeModel: Bedrock ARNs,
// Vertex resource names and @versions; Azure deployments through the
// catalog's azure_deployments) and matched case-insensitively. A price that
// is a fallback rather than exact — another snapshot, a global price for a
// regional id, the standard rates for an unknown service tier, a provider
// cost that disagrees with the catalog — is never silent: the quote carries
// a warning whose code is one of FallbackCodes.
//
// Costs are int64 pico-USD. Catalog prices are decimal USD per 1M tokens
// with at most six decimal places, so every rate is a whole number of
// pico-USD per token and pricing an event is integer arithmetic.
package pricing
