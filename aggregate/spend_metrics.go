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

	mu    sync.Mutex
	index map[spendKey]int
	sums  []spendSum // by (team, model)
	// labelled and series are sums by (team, model) label values.
	labelled map[spendKey]int
	series   []spendSum
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
		teams:    newLabelLimiter(SpendLabelLimit),
		models:   newLabelLimiter(SpendLabelLimit),
		index:    map[spendKey]int{},
		labelled: map[spendKey]int{},
	}
}

// observe counts events just made durable. The events are summed per
// (team, model) first and each series is touched once per call: a
// labelled counter costs a hash and a lock per update, which per event was
// a noticeable share of the aggregator's CPU.
func (m *spendMetrics) observe(events []schemas.StoredEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.index)
	m.sums = m.sums[:0]
	for _, se := range events {
		e := se.Event
		if e == nil || se.RatingVersion != 0 {
			continue
		}
		k := spendKey{e.Owner.Team, e.ModelID()}
		i, ok := m.index[k]
		if !ok {
			i = len(m.sums)
			m.index[k] = i
			m.sums = append(m.sums, spendSum{key: k})
		}
		sum := &m.sums[i]
		if e.CostPicos != 0 {
			sum.cost += float64(e.CostPicos) / 1e12
			sum.costed = true
		}
		if e.Kind != schemas.KindLLMRequest {
			continue
		}
		sum.requests++
		if u := e.Usage; u != nil {
			for j, n := range [len(tokenTypes)]*int64{u.InputTokens, u.OutputTokens, u.CacheReadInputTokens, u.CacheWriteInputTokens, u.ReasoningOutputTokens} {
				if n != nil && *n > 0 {
					sum.tokens[j] += float64(*n)
				}
			}
		}
	}
	// In order of first appearance, so that the label limits keep the
	// first teams and models seen, as they would event by event. Keys
	// past the limits share the OtherLabel series: they are merged first,
	// so that each series is touched once however many keys it counts (at
	// 100,000 keys a flush, touching a series per key was a tenth of the
	// aggregator's CPU).
	clear(m.labelled)
	m.series = m.series[:0]
	for i := range m.sums {
		sum := &m.sums[i]
		k := spendKey{m.teams.label(sum.key.team), m.models.label(sum.key.model)}
		j, ok := m.labelled[k]
		if !ok {
			j = len(m.series)
			m.labelled[k] = j
			m.series = append(m.series, spendSum{key: k})
		}
		m.series[j].add(sum)
	}
	for i := range m.series {
		sum := &m.series[i]
		team, model := sum.key.team, sum.key.model
		if sum.costed {
			m.cost.WithLabelValues(team, model).Add(sum.cost)
		}
		if sum.requests > 0 {
			m.requests.WithLabelValues(team, model).Add(sum.requests)
		}
		for j, n := range sum.tokens {
			if n > 0 {
				m.tokens.WithLabelValues(team, model, tokenTypes[j]).Add(n)
			}
		}
	}
}

// tokenTypes are the values of aivis_spend_tokens_total's type label.
var tokenTypes = [...]string{"input", "output", "cache_read", "cache_write", "reasoning"}

type spendKey struct{ team, model string }

// spendSum is what one observe call adds to the series of one key.
type spendSum struct {
	key      spendKey
	cost     float64
	costed   bool
	requests float64
	tokens   [len(tokenTypes)]float64
}

// add adds o's counts to s.
func (s *spendSum) add(o *spendSum) {
	s.cost += o.cost
	s.costed = s.costed || o.costed
	s.requests += o.requests
	for j, n := range o.tokens {
		s.tokens[j] += n
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
