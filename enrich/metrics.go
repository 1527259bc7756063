package enrich

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivis-dev/aivis/internal/obs"
)

type metrics struct {
	events       *prometheus.CounterVec
	unpriced     *prometheus.CounterVec
	fallbacks    *prometheus.CounterVec
	unowned      prometheus.Counter
	reloadErrors prometheus.Counter
	reloads      prometheus.Counter
	lag          *prometheus.GaugeVec
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
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_enrich_pricing_fallbacks_total",
			Help: "Enriched events priced by a fallback rather than an exact price, by provider (catalog providers only; others are \"other\") and warning code: unknown_service_tier (standard rates used; add the tier to the entry's service_tiers), snapshot_fallback (a pattern priced a snapshot the entry does not list; list it or add its own entry), regional_price_missing (a regional Bedrock id at a global price; add a regional entry), provider_cost_mismatch (the provider's cost, which is kept, differs from the catalog's by more than enrich.provider_cost_tolerance), provider_cost_ignored (the provider's cost was unusable; the catalog's is used), unpriced_server_tool_call (calls without a per_call price were left out). An event with several codes counts once per code; `aivis report` shows the cost per model.",
		}, []string{"provider", "code"}),
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
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aivis_enrich_consumer_lag",
			Help: "Raw records not yet enriched, by partition of aivis.usage.raw.v1: the partition's high watermark less the next offset to read, as of the last batch enriched from it. Each replica exports only the partitions it holds.",
		}, []string{"partition"}),
	}
	m.events = obs.Register(reg, m.events)
	m.unpriced = obs.Register(reg, m.unpriced)
	m.fallbacks = obs.Register(reg, m.fallbacks)
	m.unowned = obs.Register(reg, m.unowned)
	m.reloadErrors = obs.Register(reg, m.reloadErrors)
	m.reloads = obs.Register(reg, m.reloads)
	m.lag = obs.Register(reg, m.lag)
	return m
}
