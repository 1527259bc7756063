package clickhouse

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/aivis-dev/aivis/internal/obs"
)

var (
	batchRows = promauto.With(obs.Registry).NewHistogramVec(prometheus.HistogramOpts{
		Name:    "aivis_sink_batch_rows",
		Help:    "Rows per INSERT written to ClickHouse, by table.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 11), // 1 .. ~1M
	}, []string{"table"})
	writeSeconds = promauto.With(obs.Registry).NewHistogramVec(prometheus.HistogramOpts{
		Name:    "aivis_sink_write_seconds",
		Help:    "Time to write one INSERT to ClickHouse, retries included, by table.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1ms .. ~33s
	}, []string{"table"})
	writeErrors = promauto.With(obs.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_sink_errors_total",
		Help: "INSERTs that failed after all retries (their offsets were not committed), by table.",
	}, []string{"table"})
	writeRetries = promauto.With(obs.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_sink_retries_total",
		Help: "INSERT attempts that failed and were retried, by table.",
	}, []string{"table"})
)
