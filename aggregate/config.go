package aggregate

import (
	"errors"
	"fmt"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// Config sets the windowing, lateness, deduplication and flushing policy.
type Config struct {
	// Window is the tumbling event-time window length.
	Window time.Duration `koanf:"window" help:"tumbling event-time window; must divide a day (1m, 5m, 1h)"`
	// OutOfOrder is how far behind the newest event time of a partition an
	// event may be and still count as on time (watermark lag).
	OutOfOrder time.Duration `koanf:"out_of_order" help:"how far behind a partition's newest event time an event still counts as on time"`
	// AllowedLateness keeps a window open this long past its end (measured
	// on the watermark) before it is emitted.
	AllowedLateness time.Duration `koanf:"allowed_lateness" help:"how long a window stays open past its end, on the watermark"`
	// LateHorizon is how far behind the watermark an event may be and still
	// be counted (as a correction of its closed window). Older events go to
	// the dead-letter topic with reason too_late.
	LateHorizon time.Duration `koanf:"late_horizon" help:"oldest event, behind the watermark, still counted as a correction; older ones are dead-lettered as too_late"`
	// MaxFuture is how far ahead of the processing clock an event may be
	// and still count. A partition's watermark follows its newest event, so
	// one event dated days ahead would make every current event on the
	// partition too late; further ahead than this, the event is
	// dead-lettered as future and leaves the watermark where it is. Ingest
	// refuses such events at once (ingest.max_clock_skew); this catches
	// those produced straight to the raw topic. Keep it above
	// ingest.max_clock_skew, with room for the hosts' clocks to differ.
	MaxFuture time.Duration `koanf:"max_future" help:"newest event time, ahead of the aggregator's clock, that still counts and moves the watermark; later ones are dead-lettered as future (at least ingest.max_clock_skew)"`
	// DedupHorizon is how long an event_id is remembered, on event time.
	DedupHorizon time.Duration `koanf:"dedup_horizon" help:"how long, in event time, an event_id is remembered"`
	// DedupMemoryMiB is the memory the remembered event ids may take
	// across partitions. About 5 bytes an id in all: the default
	// holds 24 h at 10,000 events/s (864M ids). When the horizon does not
	// fit, the oldest ids are forgotten early and the stage says so (log,
	// aivis_aggregate_dedup_horizon_held_seconds, readiness).
	DedupMemoryMiB int64 `koanf:"dedup_memory_mib" help:"memory, in MiB, the remembered event ids may take across partitions (about 5 bytes an id: the default holds 24h at 10,000 events/s); over it the oldest are forgotten early and the aggregator reports not ready"`
	// MaxDedupEntries is deprecated: an optional bound on the number of
	// remembered ids (0: none, only DedupMemoryMiB).
	MaxDedupEntries int `koanf:"max_dedup_entries" help:"deprecated, use dedup_memory_mib: optional bound on the remembered event ids across partitions (0: none)"`
	// IdleTimeout emits the open windows of a partition that received no
	// records for this long (wall clock), so that quiet partitions publish.
	IdleTimeout time.Duration `koanf:"idle_timeout" help:"emit a partition's open windows after this long without records (wall clock)"`
	// FlushInterval is how often accepted events and closed windows are
	// written to the sink.
	FlushInterval time.Duration `koanf:"flush_interval" help:"how often accepted events and closed windows are written to ClickHouse"`
	// MaxPendingEvents forces a flush when this many accepted events wait.
	// The events are held decoded (about 1.3 KB each with their labels and
	// usage) until the sink has them, so while catching up on a backlog
	// this bounds their memory. A flush's events are one INSERT, one part
	// in ClickHouse; fewer, larger parts cost the server much less CPU an
	// event (sinks/clickhouse BenchmarkStoreCost), which is why the
	// default lets a fast aggregator gather 65,536.
	MaxPendingEvents int `koanf:"max_pending_events" help:"flush at once when this many accepted events wait"`
	// Topic is the enriched topic to consume.
	Topic string `koanf:"topic" help:"enriched topic to consume"`
	// Group is the Kafka consumer group shared by all replicas.
	Group string `koanf:"group" help:"Kafka consumer group shared by all replicas"`
	// InstanceID enables static group membership when set (unique per replica).
	InstanceID string `koanf:"instance_id" help:"static group membership id, unique per replica (empty: dynamic membership)"`
	// SessionTimeout is how long the group waits for a silent replica
	// before giving its partitions to others (the broker bounds it, 6s
	// minimum by default).
	SessionTimeout time.Duration `koanf:"session_timeout" help:"how long the group waits for a silent replica before moving its partitions (at least 6s on default brokers)"`
	// PollRecords bounds the records taken per poll.
	PollRecords int `koanf:"poll_records" help:"most records taken per poll"`
	// ScoreAnomalies runs the anomaly scorer in this process. The scorer is
	// idempotent, so running it in several replicas is safe but wasteful.
	ScoreAnomalies bool          `koanf:"score_anomalies" help:"run the anomaly scorer in this process (idempotent: one replica is enough)"`
	Anomaly        AnomalyConfig `koanf:"anomaly"`
}

// DefaultConfig is what aivis runs with when nothing is configured.
// EventsTTLDays is the age in days at which current ClickHouse drops a row
// of the per-event table (its TTL, migration 1).
const EventsTTLDays = 400

// MaxLateHorizon bounds late_horizon a month inside that TTL, so that no
// event the aggregator still accepts is already past it.
const MaxLateHorizon = (EventsTTLDays - 30) * 24 * time.Hour

func DefaultConfig() Config {
	return Config{
		Window:           time.Minute,
		OutOfOrder:       5 * time.Second,
		AllowedLateness:  time.Minute,
		LateHorizon:      24 * time.Hour,
		MaxFuture:        10 * time.Minute,
		DedupHorizon:     24 * time.Hour,
		DedupMemoryMiB:   4608,
		IdleTimeout:      10 * time.Second,
		FlushInterval:    time.Second,
		MaxPendingEvents: 65_536,
		Topic:            schemas.TopicEnriched,
		Group:            "aivis-aggregate",
		SessionTimeout:   45 * time.Second,
		PollRecords:      10_000,
		ScoreAnomalies:   true,
		Anomaly:          DefaultAnomalyConfig(),
	}
}

// Validate reports every problem at once, each with its key path.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("aggregate.%s: "+format, append([]any{key}, args...)...))
	}
	if c.Window < time.Second || c.Window > 24*time.Hour || (24*time.Hour)%c.Window != 0 {
		bad("window", "%s must divide a day evenly and be between 1s and 24h (e.g. 1m)", c.Window)
	}
	if c.OutOfOrder < 0 {
		bad("out_of_order", "must not be negative")
	}
	if c.AllowedLateness < 0 {
		bad("allowed_lateness", "must not be negative")
	}
	if c.LateHorizon < c.AllowedLateness+c.Window {
		bad("late_horizon", "%s must be at least allowed_lateness + window", c.LateHorizon)
	}
	if c.LateHorizon > MaxLateHorizon {
		bad("late_horizon", "%s is beyond %s: on current ClickHouse the per-event table drops events %d days old, so an older correction would reach the windows but not usage_events (and aivis verify)", c.LateHorizon, MaxLateHorizon, EventsTTLDays)
	}
	if c.MaxFuture < 0 {
		bad("max_future", "must not be negative (e.g. 10m)")
	}
	if c.DedupHorizon <= 0 {
		bad("dedup_horizon", "must be positive (e.g. 24h)")
	}
	if c.DedupMemoryMiB < 16 {
		bad("dedup_memory_mib", "%d is too small (at least 16; 4608 holds 24h at 10,000 events/s)", c.DedupMemoryMiB)
	}
	if c.MaxDedupEntries != 0 && c.MaxDedupEntries < 1000 {
		bad("max_dedup_entries", "%d is too small (0 for no bound, or at least 1000; prefer dedup_memory_mib)", c.MaxDedupEntries)
	}
	if c.IdleTimeout <= 0 {
		bad("idle_timeout", "must be positive")
	}
	if c.FlushInterval <= 0 {
		bad("flush_interval", "must be positive")
	}
	if c.MaxPendingEvents <= 0 {
		bad("max_pending_events", "must be positive")
	}
	if c.Topic == "" {
		bad("topic", "must name the enriched topic (e.g. %s)", schemas.TopicEnriched)
	}
	if c.Group == "" {
		bad("group", "must name the consumer group (e.g. aivis-aggregate)")
	}
	if c.SessionTimeout < time.Second {
		bad("session_timeout", "%s must be at least 1s", c.SessionTimeout)
	}
	if c.PollRecords <= 0 {
		bad("poll_records", "must be positive")
	}
	if err := c.Anomaly.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
