package aggregate

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivis-dev/aivis/internal/obs"
	"github.com/aivis-dev/aivis/schemas"
)

// SpendLabelLimit bounds the label values of the spend families: the first
// SpendLabelLimit teams (and models) an aggregator sees keep their names,
// later ones are counted under OtherLabel, so that a Prometheus series set
// stays bounded whatever the traffic.
const SpendLabelLimit = 25

// OtherLabel is the label value of the teams and models beyond the limit.
const OtherLabel = "other"

// spendMetrics count the cost, tokens and requests of the events the
// aggregator has made durable (after deduplication, once each), by team
// and model, for Grafana set-ups without ClickHouse. Money here is a
// Prometheus float, for charts; the exact sums are cost_by_window's.
type spendMetrics struct {
	cost     *prometheus.CounterVec
	tokens   *prometheus.CounterVec
	requests *prometheus.CounterVec
	teams    *labelLimiter
	models   *labelLimiter
}

func newSpendMetrics(reg prometheus.Registerer) *spendMetrics {
	return &spendMetrics{
		cost: obs.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_spend_usd_total",
			Help: "Cost of the events written to ClickHouse, in USD, by team and model (the first 25 of each; later ones as \"other\").",
		}, []string{"team", "model"})),
		tokens: obs.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_spend_tokens_total",
			Help: "Tokens of the events written to ClickHouse, by team, model and type (input includes cache_read and cache_write; output includes reasoning).",
		}, []string{"team", "model", "type"})),
		requests: obs.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_spend_requests_total",
			Help: "LLM requests written to ClickHouse, by team and model.",
		}, []string{"team", "model"})),
		teams:  newLabelLimiter(SpendLabelLimit),
		models: newLabelLimiter(SpendLabelLimit),
	}
}

// observe counts events just made durable.
func (m *spendMetrics) observe(events []schemas.StoredEvent) {
	for _, se := range events {
		e := se.Event
		if e == nil || se.RatingVersion != 0 {
			continue
		}
		team, model := m.teams.label(e.Owner.Team), m.models.label(e.ModelID())
		if e.CostPicos != 0 {
			m.cost.WithLabelValues(team, model).Add(float64(e.CostPicos) / 1e12)
		}
		if e.Kind != schemas.KindLLMRequest {
			continue
		}
		m.requests.WithLabelValues(team, model).Inc()
		if u := e.Usage; u != nil {
			for _, t := range []struct {
				name string
				n    *int64
			}{{"input", u.InputTokens}, {"output", u.OutputTokens}, {"cache_read", u.CacheReadInputTokens}, {"cache_write", u.CacheWriteInputTokens}, {"reasoning", u.ReasoningOutputTokens}} {
				if t.n != nil && *t.n > 0 {
					m.tokens.WithLabelValues(team, model, t.name).Add(float64(*t.n))
				}
			}
		}
	}
}

// labelLimiter keeps the first limit values it is asked about and maps the
// rest to OtherLabel.
type labelLimiter struct {
	mu    sync.Mutex
	limit int
	seen  map[string]struct{}
}

func newLabelLimiter(limit int) *labelLimiter {
	return &labelLimiter{limit: limit, seen: make(map[string]struct{}, limit)}
}

func (l *labelLimiter) label(v string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[v]; ok {
		return v
	}
	if len(l.seen) >= l.limit {
		return OtherLabel
	}
	l.seen[v] = struct{}{}
	return v
}
