package budget

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
)

// metrics are labelled by budget id only; ids come from the budgets file,
// which holds at most MaxBudgets, and removed budgets are forgotten.
type metrics struct {
	spent, forecast, ratio *prometheus.GaugeVec
	alerts                 *prometheus.CounterVec
	evaluations, errors    prometheus.Counter
	reloadErrors           prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		spent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aivis_budget_spent_usd",
			Help: "Spend of each budget's current period so far, in USD, by budget id (budget_status has the exact decimal).",
		}, []string{"budget"}),
		forecast: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aivis_budget_forecast_usd",
			Help: "Forecast spend of each budget at the end of its current period, in USD, by budget id.",
		}, []string{"budget"}),
		ratio: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aivis_budget_used_ratio",
			Help: "Spend of each budget's current period divided by its amount (1 = used up), by budget id.",
		}, []string{"budget"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_budget_alerts_total",
			Help: "Budget alerts raised, by threshold: soft, hard, or forecast (forecast to run out before the period ends).",
		}, []string{"threshold"}),
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_budget_evaluations_total",
			Help: "Evaluations of every budget that wrote budget_status.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_budget_errors_total",
			Help: "Failed budget evaluations or alert publishes; the log says which budget and why.",
		}),
		reloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_budget_reload_errors_total",
			Help: "Failed reloads of the budgets file; the previous budgets stay in use. The log says why.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.spent, m.forecast, m.ratio, m.alerts, m.evaluations, m.errors, m.reloadErrors)
	}
	return m
}

// set exports a budget's amounts as gauges, which are floats by nature.
func (m *metrics) set(id string, spentUSD, forecastUSD, amountUSD decimal.Decimal) {
	spent, _ := spentUSD.Float64()
	forecast, _ := forecastUSD.Float64()
	amount, _ := amountUSD.Float64()
	m.spent.WithLabelValues(id).Set(spent)
	m.forecast.WithLabelValues(id).Set(forecast)
	if amount > 0 {
		m.ratio.WithLabelValues(id).Set(spent / amount)
	}
}

func (m *metrics) forget(id string) {
	m.spent.DeleteLabelValues(id)
	m.forecast.DeleteLabelValues(id)
	m.ratio.DeleteLabelValues(id)
}
