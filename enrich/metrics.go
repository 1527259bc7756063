package enrich

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivis-dev/aivis/internal/obs"
)

type metrics struct {
	events       *prometheus.CounterVec
	unpriced     *prometheus.CounterVec
	unowned      prometheus.Counter
	reloadErrors prometheus.Counter
	reloads      prometheus.Counter
}

// newMetrics registers enrich's families on reg (nil: not exported).
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_enrich_events_total",
			Help: "Raw records handled by enrich, by result (enriched or deadlettered), counted once acknowledged by Kafka.",
		}, []string{"result"}),
		unpriced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_enrich_unpriced_total",
			Help: "Enriched events stored unpriced (cost 0, flags.unpriced), by provider (catalog providers only; others are \"other\") and reason: no_price (add the model to the pricing catalog) or cost_out_of_range (the cost is beyond 9.2 million USD per event; the event's warnings say which meter).",
		}, []string{"provider", "reason"}),
		unowned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_enrich_unowned_total",
			Help: "Enriched events that no ownership rule matched (team \"unattributed\"). Add an api_keys or labels rule.",
		}),
		reloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_enrich_reload_errors_total",
			Help: "Failed reloads of the pricing catalog or ownership rules; the previous rules stay in use. The log says which file and why.",
		}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_enrich_reloads_total",
			Help: "Successful reloads of the pricing catalog and ownership rules.",
		}),
	}
	m.events = obs.Register(reg, m.events)
	m.unpriced = obs.Register(reg, m.unpriced)
	m.unowned = obs.Register(reg, m.unowned)
	m.reloadErrors = obs.Register(reg, m.reloadErrors)
	m.reloads = obs.Register(reg, m.reloads)
	return m
}
