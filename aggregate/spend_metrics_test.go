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
