// Package governance judges who uses which model, where data goes and who
// fails to get in, against a policy file (approved providers and models
// per team, allowed provider regions per team or data class, required
// labels; see docs/governance.md).
//
// The Evaluator runs with aggregate: every interval it reads the recent
// usage_events and the auth_failures ingest counted (TopicSecurity), and
// turns what it finds into incidents with the lifecycle of cost anomalies
// (firing, updated, resolved; a stable incident_id). Each change is a row
// of governance_signals, a metric and an alert on aivis.alerts.v1 with
// category governance or security. Guard bounds the distinct end users and
// tags enrich passes on.
package governance
