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
// Model is the canonical model (Enriched.ModelID), not a reported name.
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
	// CostPicos is 128 bits wide: a window's money cannot overflow.
	CostPicos Picos128

	LatencyCount uint64
	LatencySumMs int64
	// LatencyHist counts latencies per bucket from bucket 0 through the
	// last non-empty one (at most LatencyBuckets; empty without latencies):
	// sumForEach adds histograms of different lengths as if padded.
	LatencyHist []uint64
}

// PartitionHistory is what a sink already holds for one partition of the
// enriched topic: the emitted through-offset of each window (by window
// start, unix seconds) and the event ids stored below the offset
// consumption restarts from. The aggregator rebuilds its state from it
// after a restart or rebalance.
type PartitionHistory struct {
	Emitted map[int64]int64
	SeenIDs []SeenID
}

// SeenID is an event id with its event time, for rebuilding dedup state.
type SeenID struct {
	ID   string
	Time time.Time
}

// SeriesCost is the total cost of one (team, model) in one window, as the
// anomaly scorer reads it back; Model is the canonical model.
type SeriesCost struct {
	WindowStart time.Time
	Team        string
	Model       string
	CostPicos   Picos128
}

// Score is one scored window of one (team, model) series, with the anomaly
// detector's EWMA state after it. Amounts are exact picodollars; Z and
// EWMAVar (a variance, in picodollars²) are statistics.
type Score struct {
	SeriesCost
	BaselinePicos Picos128
	StddevPicos   Picos128
	Z             float64
	Observations  uint32
	Anomaly       bool
	EWMAMeanPicos Picos128
	EWMAVar       float64
	// IncidentID, IncidentStatus (firing, updated, resolved) and
	// IncidentUpdate mark the window whose incident alert was published,
	// so that a restarted scorer does not publish it again.
	IncidentID     string
	IncidentStatus string
	IncidentUpdate uint32
	// ScoredAt is when the score was computed; zero means when it is
	// written.
	ScoredAt time.Time
}
