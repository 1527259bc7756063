package aggregate

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/aivis-dev/aivis/internal/obs"
)

var (
	factory = promauto.With(obs.Registry)

	metricEvents = factory.NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_aggregate_events_total",
		Help: "Enriched events seen by the aggregator, by outcome (accepted, duplicate, replayed, too_late, invalid).",
	}, []string{"outcome"})
	metricDeadLetters = obs.DeadLetters
	metricLateness    = factory.NewHistogram(prometheus.HistogramOpts{
		Name:    "aivis_aggregate_window_lateness_seconds",
		Help:    "How far behind its partition's watermark an accepted event arrived (0 for on-time events is not recorded).",
		Buckets: prometheus.ExponentialBuckets(1, 4, 10),
	})
	metricLag = factory.NewGaugeVec(prometheus.GaugeOpts{
		Name: "aivis_aggregate_consumer_lag",
		Help: "Records between the last processed offset and the partition's high watermark.",
	}, []string{"partition"})
	metricOpenWindows = factory.NewGauge(prometheus.GaugeOpts{
		Name: "aivis_aggregate_open_windows",
		Help: "Windows held in memory across owned partitions.",
	})
	metricPending = factory.NewGauge(prometheus.GaugeOpts{
		Name: "aivis_aggregate_pending_events",
		Help: "Accepted events waiting for the next flush.",
	})
	metricDedupEntries = factory.NewGauge(prometheus.GaugeOpts{
		Name: "aivis_aggregate_dedup_entries",
		Help: "Event ids remembered for deduplication.",
	})
	metricDedupEvictions = factory.NewCounter(prometheus.CounterOpts{
		Name: "aivis_aggregate_dedup_evictions_total",
		Help: "Event ids forgotten early because max_dedup_entries was reached; raise it if this grows.",
	})
	metricFlushSeconds = factory.NewHistogram(prometheus.HistogramOpts{
		Name:    "aivis_aggregate_flush_seconds",
		Help:    "Time to make one flush durable in the sink, retries included.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})
	metricFlushFailures = factory.NewCounter(prometheus.CounterOpts{
		Name: "aivis_aggregate_flush_failures_total",
		Help: "Sink writes that failed; offsets are not committed until a retry succeeds.",
	})
	metricRows = factory.NewCounter(prometheus.CounterOpts{
		Name: "aivis_aggregate_window_rows_total",
		Help: "Window rows emitted.",
	})
	metricAnomalies = factory.NewCounter(prometheus.CounterOpts{
		Name: "aivis_anomalies_total",
		Help: "Windows scored as cost anomalies.",
	})
	metricScorerErrors = factory.NewCounter(prometheus.CounterOpts{
		Name: "aivis_anomaly_scorer_errors_total",
		Help: "Anomaly scoring runs that failed.",
	})
)
