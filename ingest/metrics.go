package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/aivis-dev/aivis/internal/obs"
)

var (
	requestsTotal = promauto.With(obs.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_ingest_requests_total",
		Help: "Requests to POST /v1/events by HTTP status code.",
	}, []string{"code"})
	eventsTotal = promauto.With(obs.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_ingest_events_total",
		Help: "Events received, by result: accepted (acknowledged by Kafka) or rejected (not produced).",
	}, []string{"result"})
	produceSeconds = promauto.With(obs.Registry).NewHistogram(prometheus.HistogramOpts{
		Name:    "aivis_ingest_produce_seconds",
		Help:    "Time from producing a request's events until Kafka acknowledged all of them or the attempt failed.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1ms .. 16s
	})
	inflight = promauto.With(obs.Registry).NewGauge(prometheus.GaugeOpts{
		Name: "aivis_ingest_inflight",
		Help: "Requests being read, decoded or produced; bounded by ingest.max_inflight_requests.",
	})
	rateLimited = promauto.With(obs.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_ingest_rate_limited_total",
		Help: "Requests refused by a producer's limit (rate_events_per_second, burst_events or max_events_per_day), by producer and limit.",
	}, []string{"producer", "limit"})

	eventsAccepted = eventsTotal.WithLabelValues("accepted")
	eventsRejected = eventsTotal.WithLabelValues("rejected")
)
