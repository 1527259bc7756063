package governance

import "github.com/prometheus/client_golang/prometheus"

// metrics are labelled by signal and category (fixed lists) and status;
// subjects (keys, addresses) go to governance_signals, never to labels.
type metrics struct {
	signals             *prometheus.CounterVec
	open                *prometheus.GaugeVec
	suppressed          *prometheus.CounterVec
	evaluations, errors prometheus.Counter
	reloadErrors        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_governance_signals_total",
			Help: "Governance and security incident changes written and published, by signal, category and status (firing, updated, resolved).",
		}, []string{"signal", "category", "status"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aivis_governance_open_incidents",
			Help: "Governance and security incidents open after the last evaluation, by signal and category.",
		}, []string{"signal", "category"}),
		suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_governance_suppressed_total",
			Help: "Findings not opened as incidents because one evaluation reached governance.max_signals for the signal.",
		}, []string{"signal"}),
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_governance_evaluations_total",
			Help: "Evaluations of the governance signals that wrote governance_signals.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_governance_errors_total",
			Help: "Failed governance evaluations or alert publishes; the log says why.",
		}),
		reloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_governance_reload_errors_total",
			Help: "Failed reloads of the governance policy file; the previous policy stays in use. The log says why.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.signals, m.open, m.suppressed, m.evaluations, m.errors, m.reloadErrors)
	}
	return m
}
