package schemas

import "time"

// LatencyBuckets is the number of latency histogram buckets stored with
// each window row. Bucket i counts latencies in (bound(i-1), bound(i)] ms
// with bound(i) = 2^(i/4); the last bucket is open-ended.
const LatencyBuckets = 96

// StoredEvent is an enriched event as the aggregator accepted it: first
// occurrence of its event_id, with its position in the enriched topic.
type StoredEvent struct {
	Event     *Enriched
	Partition int32
	Offset    int64
	// RatingVersion is 0 as first priced and grows with each re-rating;
	// the newest version of an event replaces the older ones.
	RatingVersion uint64
}

// WindowRow is one partial aggregate: the events of one enriched-topic
// partition that fall in one event-time window and one (provider, model,
// team, project), with offsets in (previous ThroughOffset, ThroughOffset].
// Rows are deterministic in their key, so a replay rewrites the same row;
// the cost_by_window view sums the partials of all partitions.
type WindowRow struct {
	WindowStart   time.Time
	WindowSeconds uint32
	Provider      string
	Model         string
	Team          string
	Project       string
	SrcPartition  int32
	ThroughOffset int64

	Requests         uint64
	Errors           uint64
	UnpricedRequests uint64

	InputTokens           int64
	CacheReadInputTokens  int64
	CacheWriteInputTokens int64
	OutputTokens          int64
	ReasoningOutputTokens int64
	CostPicos             int64

	LatencyCount uint64
	LatencySumMs int64
	LatencyHist  []uint64 // LatencyBuckets long
}
