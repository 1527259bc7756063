package pipeline

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/alerts"
	"github.com/aivis-dev/aivis/internal/config"
	"github.com/aivis-dev/aivis/internal/testenv"
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

// TestWebhooksStopAfterWhatPublishes: with webhooks configured, the
// process runs them as an actor stopped after the scorer and the budget
// evaluator, so their last alerts are queued before the queues drain.
func TestWebhooksStopAfterWhatPublishes(t *testing.T) {
	addr, db := testenv.ClickHouseDatabase(t)
	dir := t.TempDir()
	hooks := filepath.Join(dir, "webhooks.yaml")
	if err := os.WriteFile(hooks, []byte("webhooks:\n  - {name: chat, type: slack, url: 'https://hooks.example/x'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	budgets := filepath.Join(dir, "budgets.yaml")
	if err := os.WriteFile(budgets, []byte("budgets:\n  - {id: org-monthly, scope: {org: true}, period: monthly, amount_usd: 100}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.ClickHouse.Addr, cfg.ClickHouse.Database = addr, db
	cfg.Alerts.WebhooksPath, cfg.Budget.Path = hooks, budgets
	cfg.MetricsAddr = "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := Build(ctx, cfg, Options{Stages: []Stage{Aggregate, Anomaly}, Embedded: true, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	order := p.Actors()
	at := func(name string) int { return slices.Index(order, name) }
	if w := at("alert webhooks"); w < 0 || at(string(Anomaly)) < 0 || at("budget") < 0 || w < at(string(Anomaly)) || w < at("budget") {
		t.Fatalf("stop order %v: alert webhooks must come after anomaly and budget", order)
	}
}
