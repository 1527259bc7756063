package clickhouse

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivis-dev/aivis/internal/obs"
)

// metrics are the sink's families, per table.
type metrics struct {
	batchRows    *prometheus.HistogramVec
	writeSeconds *prometheus.HistogramVec
	writeErrors  *prometheus.CounterVec
	writeRetries *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		batchRows: obs.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "aivis_sink_batch_rows",
			Help:    "Rows per INSERT written to ClickHouse, by table.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 11), // 1 .. ~1M
		}, []string{"table"})),
		writeSeconds: obs.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "aivis_sink_write_seconds",
			Help:    "Time to write one INSERT to ClickHouse, retries included, by table.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1ms .. ~33s
		}, []string{"table"})),
		writeErrors: obs.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_sink_errors_total",
			Help: "INSERTs that failed after all retries (their offsets were not committed), by table.",
		}, []string{"table"})),
		writeRetries: obs.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_sink_retries_total",
			Help: "INSERT attempts that failed and were retried, by table.",
		}, []string{"table"})),
	}
}

// Option changes how Open sets up the store.
type Option func(*Store)

// WithMetrics registers the store's metrics on reg.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(s *Store) { s.metrics = newMetrics(reg) }
}
