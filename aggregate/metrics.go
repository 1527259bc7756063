package aggregate

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivis-dev/aivis/internal/obs"
)

// stageMetrics are the aggregator's families.
type stageMetrics struct {
	events         *prometheus.CounterVec
	lateness       prometheus.Histogram
	lag            *prometheus.GaugeVec
	openWindows    prometheus.Gauge
	pending        prometheus.Gauge
	dedupEntries   prometheus.Gauge
	dedupEvictions prometheus.Counter
	dedupBytes     prometheus.Gauge
	dedupHeld      prometheus.Gauge
	dedupSuspects  prometheus.Counter
	flushSeconds   prometheus.Histogram
	flushFailures  prometheus.Counter
	fenced         prometheus.Counter
	rows           prometheus.Counter
	// Enriched records read, by form: JSON, protobuf.
	formJSON, formProtobuf prometheus.Counter
}

func newStageMetrics(reg prometheus.Registerer) *stageMetrics {
	m := &stageMetrics{
		events: obs.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_aggregate_events_total",
			Help: "Enriched events seen by the aggregator, by outcome (accepted, duplicate, replayed, too_late, future, invalid).",
		}, []string{"outcome"})),
		lateness: obs.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "aivis_aggregate_window_lateness_seconds",
			Help:    "How far behind its partition's watermark an accepted event arrived (0 for on-time events is not recorded).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		})),
		lag: obs.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aivis_aggregate_consumer_lag",
			Help: "Records between the last processed offset and the partition's high watermark.",
		}, []string{"partition"})),
		openWindows: obs.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivis_aggregate_open_windows",
			Help: "Windows held in memory across owned partitions.",
		})),
		pending: obs.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivis_aggregate_pending_events",
			Help: "Accepted events waiting for the next flush.",
		})),
		dedupEntries: obs.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivis_aggregate_dedup_entries",
			Help: "Event ids remembered for deduplication.",
		})),
		dedupEvictions: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_aggregate_dedup_evictions_total",
			Help: "Event ids forgotten before the dedup horizon to stay within aggregate.dedup_memory_mib; a duplicate of one is counted twice. Raise the budget if this grows.",
		})),
		dedupBytes: obs.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivis_aggregate_dedup_bytes",
			Help: "Memory held by the remembered event ids, against aggregate.dedup_memory_mib.",
		})),
		dedupHeld: obs.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivis_aggregate_dedup_horizon_held_seconds",
			Help: "Event time every owned partition remembers ids for: aggregate.dedup_horizon, or less when ids were forgotten early to stay within aggregate.dedup_memory_mib.",
		})),
		dedupSuspects: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_aggregate_dedup_suspects_total",
			Help: "Event ids the compact dedup tiers may hold, confirmed against ClickHouse before being dropped as duplicates.",
		})),
		flushSeconds: obs.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "aivis_aggregate_flush_seconds",
			Help:    "Time to make one flush durable in the sink, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		})),
		flushFailures: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_aggregate_flush_failures_total",
			Help: "Sink writes that failed; offsets are not committed until a retry succeeds.",
		})),
		fenced: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_aggregate_fenced_flushes_total",
			Help: "Flushes not written because this replica was no longer the group member owning their partitions (paused or cut off from the broker past its session); their new owners count those events.",
		})),
		rows: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_aggregate_window_rows_total",
			Help: "Window rows emitted.",
		})),
	}
	forms := obs.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_aggregate_records_total",
		Help: "Enriched records read, by form (json, protobuf: enrich.output_format); after enrich switches form, the other stops growing once its last record is read.",
	}, []string{"format"}))
	m.formJSON, m.formProtobuf = forms.WithLabelValues("json"), forms.WithLabelValues("protobuf")
	return m
}

// scorerMetrics are the anomaly scorer's families.
type scorerMetrics struct {
	anomalies prometheus.Counter
	errors    prometheus.Counter
}

func newScorerMetrics(reg prometheus.Registerer) *scorerMetrics {
	return &scorerMetrics{
		anomalies: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_anomalies_total",
			Help: "Windows scored as cost anomalies.",
		})),
		errors: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_anomaly_scorer_errors_total",
			Help: "Anomaly scoring runs that failed.",
		})),
	}
}
