// Package enrich is the stateless stage between the raw and the enriched
// usage topics. It prices each event with a pricing.Catalog, attributes it
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
// defaults (pricing/defaults/catalog.yaml, defaults/owners.yaml). They can be
// reloaded while the stage runs; a bad new file keeps the previous rules and
// raises aivis_enrich_reload_errors_total.
package enrich
