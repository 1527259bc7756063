package aggregate

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

func TestSpendMetricsBoundTheirLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newSpendMetrics(reg)
	var events []schemas.StoredEvent
	for i := range SpendLabelLimit + 10 {
		e := &schemas.Enriched{Event: *testenv.LLMEvent("openai", "gpt-4o", testenv.Usage(1000, 200, 0, 100, 0))}
		e.Owner.Team = fmt.Sprintf("team-%02d", i)
		e.CostPicos = 1_500_000_000 // $0.0015
		events = append(events, schemas.StoredEvent{Event: e})
	}
	m.observe(events)
	if n := testutil.CollectAndCount(m.cost); n != SpendLabelLimit+1 {
		t.Errorf("%d cost series, want %d teams and other", n, SpendLabelLimit+1)
	}
	if got := testutil.ToFloat64(m.cost.WithLabelValues(OtherLabel, "gpt-4o")); got < 0.01499 || got > 0.01501 {
		t.Errorf("other team cost %f, want 0.015 (10 events)", got)
	}
	if got := testutil.ToFloat64(m.tokens.WithLabelValues("team-00", "gpt-4o", "input")); got != 1000 {
		t.Errorf("input tokens %f, want 1000", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("team-03", "gpt-4o")); got != 1 {
		t.Errorf("requests %f, want 1", got)
	}
	// A second call sums per key; a re-rated event is not counted again.
	again := &schemas.Enriched{Event: *testenv.LLMEvent("openai", "gpt-4o", testenv.Usage(10, 20, 0, 0, 0))}
	again.Owner.Team = "team-00"
	m.observe([]schemas.StoredEvent{{Event: again}, {Event: again}, {Event: again, RatingVersion: 2}})
	if got := testutil.ToFloat64(m.requests.WithLabelValues("team-00", "gpt-4o")); got != 3 {
		t.Errorf("requests %f, want 3", got)
	}
	if got := testutil.ToFloat64(m.tokens.WithLabelValues("team-00", "gpt-4o", "input")); got != 1020 {
		t.Errorf("input tokens %f, want 1020", got)
	}
}

// spendEvents returns n events over teams teams and models models, each
// with its own cost and tokens.
func spendEvents(n, teams, models int) []schemas.StoredEvent {
	events := make([]schemas.StoredEvent, n)
	for i := range events {
		e := &schemas.Enriched{Event: *testenv.LLMEvent("openai", fmt.Sprintf("model-%d", i%models), testenv.Usage(int64(100+i%7), int64(20+i%5), int64(i%3), int64(i%11), int64(i%2)))}
		e.Owner.Team = fmt.Sprintf("team-%d", (i/models)%teams)
		e.CostPicos = int64(1_000_000 + i%13)
		events[i] = schemas.StoredEvent{Event: e}
	}
	return events
}

func TestSpendMetricsMergeKeysPastTheLimits(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newSpendMetrics(reg)
	events := spendEvents(6_000, 300, 40)
	// What the counters must read: every event under its team's and
	// model's label, in order of first appearance.
	teams, models := newLabelLimiter(SpendLabelLimit), newLabelLimiter(SpendLabelLimit)
	type want struct {
		cost, requests float64
		tokens         [len(tokenTypes)]float64
	}
	wants := map[spendKey]*want{}
	for _, se := range events {
		e := se.Event
		k := spendKey{teams.label(e.Owner.Team), models.label(e.ModelID())}
		w := wants[k]
		if w == nil {
			w = &want{}
			wants[k] = w
		}
		w.cost += float64(e.CostPicos) / 1e12
		w.requests++
		u := e.Usage
		for j, n := range []*int64{u.InputTokens, u.OutputTokens, u.CacheReadInputTokens, u.CacheWriteInputTokens, u.ReasoningOutputTokens} {
			if n != nil && *n > 0 {
				w.tokens[j] += float64(*n)
			}
		}
	}
	// In two calls, as two flushes.
	m.observe(events[:2_500])
	m.observe(events[2_500:])
	if n := testutil.CollectAndCount(m.requests); n != len(wants) {
		t.Errorf("%d request series, want %d", n, len(wants))
	}
	if _, ok := wants[spendKey{OtherLabel, OtherLabel}]; !ok {
		t.Fatal("the events do not reach past both limits; the test checks nothing")
	}
	for k, w := range wants {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(k.team, k.model)); got != w.requests {
			t.Errorf("%v: requests %v, want %v", k, got, w.requests)
		}
		if got := testutil.ToFloat64(m.cost.WithLabelValues(k.team, k.model)); got < w.cost*(1-1e-9) || got > w.cost*(1+1e-9) {
			t.Errorf("%v: cost %v, want %v", k, got, w.cost)
		}
		for j, typ := range tokenTypes {
			if got := testutil.ToFloat64(m.tokens.WithLabelValues(k.team, k.model, typ)); got != w.tokens[j] {
				t.Errorf("%v: %s tokens %v, want %v", k, typ, got, w.tokens[j])
			}
		}
	}
}

// BenchmarkSpendObserve is one flush's observe: 65,536 events over 100
// keys, and over 100,000 keys (20,000 teams, most past the label limit).
func BenchmarkSpendObserve(b *testing.B) {
	for _, c := range []struct {
		name          string
		teams, models int
	}{{"keys=100", 10, 10}, {"keys=100000", 20_000, 5}} {
		b.Run(c.name, func(b *testing.B) {
			events := spendEvents(65_536, c.teams, c.models)
			m := newSpendMetrics(prometheus.NewRegistry())
			b.ReportAllocs()
			for b.Loop() {
				m.observe(events)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
		})
	}
}
