package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestScoreRunsScorerAlone: `aivis score` is the scorer and alert delivery
// without an aggregator, as the Helm chart runs it beside aggregator
// replicas that do not score; it becomes ready and exports only the
// scorer's families.
func TestScoreRunsScorerAlone(t *testing.T) {
	l := newLayout(t, 1)
	l.start("score", "score", "--aggregate.anomaly.interval", "200ms")
	l.waitReady("score", 60*time.Second)
	code, metrics := l.get("score", "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	if !strings.Contains(metrics, "aivis_anomalies_total") {
		t.Errorf("aivis score does not export the scorer's metrics:\n%s", metrics)
	}
	if strings.Contains(metrics, "aivis_aggregate_events_total") {
		t.Errorf("aivis score runs an aggregator too")
	}
	l.stopAll()
}
