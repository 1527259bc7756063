package ingest

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a server's collectors. Servers that share a registry share
// them, so that a process exports one set whatever it runs.
type metrics struct {
	requests       *prometheus.CounterVec
	eventsAccepted prometheus.Counter
	eventsRejected prometheus.Counter
	produceSeconds prometheus.Histogram
	inflight       prometheus.Gauge
	rateLimited    *prometheus.CounterVec
	spansAccepted  prometheus.Counter
	spansRejected  prometheus.Counter
	spansSkipped   prometheus.Counter
	pointsAccepted prometheus.Counter
	pointsRejected prometheus.Counter
	pointsSkipped  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	var errs []error
	m := &metrics{
		requests: register(reg, &errs, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_ingest_requests_total",
			Help: "Requests answered, by HTTP status code and route (events, adapter:<name>, adapters for an unknown adapter, traces, metrics, other).",
		}, []string{"code", "route"})),
		produceSeconds: register(reg, &errs, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "aivis_ingest_produce_seconds",
			Help:    "Time from producing a request's events until Kafka acknowledged all of them or the attempt failed.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1ms .. 16s
		})),
		inflight: register(reg, &errs, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivis_ingest_inflight",
			Help: "Requests being read, decoded or produced; bounded by ingest.max_inflight_requests.",
		})),
		rateLimited: register(reg, &errs, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_ingest_rate_limited_total",
			Help: "Requests refused by a producer's limit (rate_events_per_second, burst_events or max_events_per_day), by producer and limit.",
		}, []string{"producer", "limit"})),
	}
	events := register(reg, &errs, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_ingest_events_total",
		Help: "Events received, by result: accepted (acknowledged by Kafka) or rejected (not produced).",
	}, []string{"result"}))
	spans := register(reg, &errs, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_ingest_otlp_spans_total",
		Help: "Spans received on POST /v1/traces, by result: accepted (produced as usage events), rejected (GenAI usage that could not be normalized) or skipped (no GenAI usage).",
	}, []string{"result"}))
	points := register(reg, &errs, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_ingest_otlp_metric_points_total",
		Help: "OTLP metric data points received on POST /v1/metrics, by result: accepted (usage events produced from gen_ai.client.token.usage; one per interval and attribute set), rejected (token usage that could not be counted) or skipped (other metrics).",
	}, []string{"result"}))
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("registering the ingest metrics: %w", err)
	}
	m.eventsAccepted = events.WithLabelValues("accepted")
	m.eventsRejected = events.WithLabelValues("rejected")
	m.spansAccepted = spans.WithLabelValues("accepted")
	m.spansRejected = spans.WithLabelValues("rejected")
	m.spansSkipped = spans.WithLabelValues("skipped")
	m.pointsAccepted = points.WithLabelValues("accepted")
	m.pointsRejected = points.WithLabelValues("rejected")
	m.pointsSkipped = points.WithLabelValues("skipped")
	return m, nil
}

// register registers c with reg, or returns the collector registered
// before it under the same name.
func register[C prometheus.Collector](reg prometheus.Registerer, errs *[]error, c C) C {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	switch {
	case err == nil:
		return c
	case errors.As(err, &are):
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	*errs = append(*errs, err)
	return c
}
