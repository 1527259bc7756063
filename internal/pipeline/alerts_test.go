package pipeline

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/alerts"
	"github.com/aivis-dev/aivis/internal/config"
)

// TestAlertSink: without webhooks alerts go to the topic only; with them the
// scorer and the budget evaluator share one webhook sink (one set of
// metrics) behind a topic-first fan-out.
func TestAlertSink(t *testing.T) {
	topic := aggregate.KafkaAlerts{Topic: "aivis.alerts.v1"}
	p := &Process{cfg: config.Default(), Registry: prometheus.NewRegistry(), log: slog.New(slog.DiscardHandler)}
	if s, err := p.alertSink(topic); err != nil || s != (aggregate.AlertSink)(topic) {
		t.Fatalf("without webhooks: %#v, %v", s, err)
	}
	path := filepath.Join(t.TempDir(), "webhooks.yaml")
	if err := os.WriteFile(path, []byte("webhooks:\n  - {name: chat, type: slack, url: 'https://hooks.example/x'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cfg.Alerts.WebhooksPath = path
	a, err := p.alertSink(topic)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.alertSink(topic) // a second registration would panic
	if err != nil {
		t.Fatal(err)
	}
	fa, ok := a.(alerts.Fanout)
	if !ok || fa.Topic != (alerts.Sink)(topic) || fa.Webhooks == nil || fa.Webhooks != b.(alerts.Fanout).Webhooks {
		t.Fatalf("fan-outs %#v and %#v", a, b)
	}
	p.cfg.Alerts.WebhooksPath = filepath.Join(t.TempDir(), "missing.yaml")
	p.webhooks = nil
	if _, err := p.alertSink(topic); err == nil {
		t.Fatal("a missing webhooks file was accepted")
	}
}
