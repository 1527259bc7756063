// Package aggregate turns the enriched topic into per-window cost rows.
//
// Records enter from aivis.usage.enriched.v1, keyed by event_id, through a
// consumer group whose replicas each own some partitions. Per partition the
// engine keeps a watermark (newest event time minus the out-of-order bound),
// remembers event ids for deduplication (recent ones exactly, older ones in
// compact hourly buckets whose hits are confirmed with the sink, within a
// memory budget; see dedupTiers), buffers each poll's accepted events
// into an Arrow record batch and folds its columns into tumbling event-time
// windows per (provider, canonical model, team, project). A window is emitted once the
// watermark passes its end plus the allowed lateness, or when its partition
// goes idle; events for an emitted window are emitted again as a correction
// row, and events past the late horizon are dead-lettered as too_late.
// Sums are exact: cost is summed in 128 bits, and a window whose int64
// token or latency sum would overflow continues in another row of its own.
//
// Output leaves through a Sink: the accepted events and the window rows.
// Each row records the partition offset it covers through; on assignment the
// engine reads those back and skips any replayed record at or below its
// window's through-offset. Offsets are committed only up to the oldest event
// not yet durable. Together this makes every event count exactly once
// whatever the crash, rebalance or replay timing, and makes totals
// independent of the number of replicas: the cost_by_window view sums the
// per-partition partial rows (the global phase of a two-phase aggregation).
package aggregate
