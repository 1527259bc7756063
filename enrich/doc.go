// Package enrich is the stateless stage between the raw and the enriched
// usage topics. It prices each event from a versioned catalog, attributes it
// to an owner from ownership rules, and sets policy flags.
//
// Data enters as JSON events on aivis.usage.raw.v1 (consumer group
// "aivis-enrich"). Each valid event leaves as a schemas.Enriched on
// aivis.usage.enriched.v1 under the same record key; undecodable or invalid
// records leave as a schemas.DeadLetter on aivis.deadletter.v1. Offsets are
// committed only after the output record was acknowledged by all in-sync
// replicas, so a crash replays work instead of losing it.
//
// The pricing catalog and the ownership rules are YAML files with embedded
// defaults (defaults/catalog.yaml, defaults/owners.yaml). They can be
// reloaded while the stage runs; a bad new file keeps the previous rules and
// raises aivis_enrich_reload_errors_total.
//
// Costs are int64 pico-USD. Catalog prices are decimal USD per 1M tokens
// with at most six decimal places, so every rate is a whole number of
// pico-USD per token and pricing an event is integer arithmetic.
package enrich
