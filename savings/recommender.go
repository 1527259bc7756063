package savings

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// Store is what the recommender reads usage from and keeps each day's
// recommendations in; *clickhouse.Store satisfies it.
type Store interface {
	Querier
	WriteSavings(ctx context.Context, rows []clickhouse.SavingsRow) error
}

// AlertSink publishes alerts; aggregate.KafkaAlerts satisfies it. Publish
// returns once the alerts are durable or fails.
type AlertSink interface {
	Publish(ctx context.Context, alerts []schemas.Alert) error
}

// Recommender recomputes the recommendations once per UTC day over the
// Lookback before the day's start, stores them in savings_recommendations
// (one row per day and recommendation), and publishes on the alerts topic
// those whose monthly saving reaches AlertMinMonthlyUSD and that were not
// published within the Lookback before: a standing recommendation is
// published again once per Lookback, not every day. A restart finds the
// day's rows and does not recompute; publishing happens before the rows
// are stored, so a failure between the two publishes again under the same
// AlertID, which subscribers deduplicate.
type Recommender struct {
	cfg      Config
	rules    Rules
	minAlert decimal.Decimal
	catalog  *pricing.Catalog
	store    Store
	alerts   AlertSink
	log      *slog.Logger
	now      func() time.Time
	done     time.Time // the last day computed
	lastErr  atomic.Pointer[error]
	runs     prometheus.Counter
	failures prometheus.Counter
	recs     prometheus.Gauge
}

// NewRecommender loads cfg.Path's rules.
func NewRecommender(cfg Config, cat *pricing.Catalog, store Store, alerts AlertSink, reg prometheus.Registerer, log *slog.Logger) (*Recommender, error) {
	rules := DefaultRules()
	if cfg.Path != "" {
		var err error
		if rules, err = LoadRules(cfg.Path); err != nil {
			return nil, err
		}
	}
	minAlert, err := cfg.AlertMin()
	if err != nil {
		return nil, err
	}
	r := &Recommender{cfg: cfg, rules: rules, minAlert: minAlert, catalog: cat, store: store, alerts: alerts, log: log, now: time.Now,
		runs:     prometheus.NewCounter(prometheus.CounterOpts{Name: "aivis_savings_runs_total", Help: "Daily savings computations completed."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "aivis_savings_failures_total", Help: "Savings computations that failed (retried at the next interval)."}),
		recs:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "aivis_savings_recommendations", Help: "Recommendations of the last daily computation."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{r.runs, r.failures, r.recs} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering savings metrics: %w", err)
			}
		}
	}
	return r, nil
}

// SetClock replaces the clock (tests).
func (r *Recommender) SetClock(now func() time.Time) { r.now = now }

// Ready fails while the last computation failed.
func (r *Recommender) Ready() error {
	if p := r.lastErr.Load(); p != nil && *p != nil {
		return fmt.Errorf("savings recommender: %w", *p)
	}
	return nil
}

// Run computes the day's recommendations at start and every Interval
// until ctx ends.
func (r *Recommender) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := r.RunOnce(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("computing savings recommendations", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunOnce computes, publishes and stores the current day's
// recommendations unless they are stored already; it returns them (nil
// when the day was done).
func (r *Recommender) RunOnce(ctx context.Context) ([]Recommendation, error) {
	now := r.now().UTC()
	day := now.Truncate(24 * time.Hour)
	if day.Equal(r.done) {
		return nil, nil
	}
	recs, err := r.runDay(ctx, day, now)
	if err != nil {
		r.failures.Inc()
		r.lastErr.Store(&err)
		return nil, err
	}
	var none error
	r.lastErr.Store(&none)
	return recs, nil
}

func (r *Recommender) runDay(ctx context.Context, day, now time.Time) ([]Recommendation, error) {
	var stored uint64
	err := each(ctx, r.store, "stored savings", `SELECT count() FROM `+clickhouse.TableSavings+` WHERE day = toDate(?)`,
		[]any{day.Format(time.DateOnly)}, func(scan func(...any) error) error { return scan(&stored) })
	if err != nil {
		return nil, err
	}
	if stored > 0 {
		r.done = day
		return nil, nil
	}
	from := day.Add(-r.cfg.Lookback)
	res, err := Build(ctx, r.store, r.catalog, r.rules, from, day)
	if err != nil {
		return nil, err
	}
	published := map[string]bool{}
	err = each(ctx, r.store, "published savings", `SELECT DISTINCT id FROM `+clickhouse.ViewSavings+`
WHERE published = 1 AND day >= toDate(?) AND day < toDate(?)`,
		[]any{from.Format(time.DateOnly), day.Format(time.DateOnly)}, func(scan func(...any) error) error {
			var id string
			if err := scan(&id); err != nil {
				return err
			}
			published[id] = true
			return nil
		})
	if err != nil {
		return nil, err
	}
	var alerts []schemas.Alert
	rows := make([]clickhouse.SavingsRow, 0, len(res.Recommendations))
	for _, rec := range res.Recommendations {
		above := rec.MonthlySavingUSD.GreaterThanOrEqual(r.minAlert)
		if above && !published[rec.ID] {
			alerts = append(alerts, AlertFor(rec, day, from, now))
		}
		rows = append(rows, Row(rec, day, from, now, above))
	}
	if len(alerts) > 0 && r.alerts != nil {
		if err := r.alerts.Publish(ctx, alerts); err != nil {
			return nil, fmt.Errorf("publishing %d savings alerts: %w", len(alerts), err)
		}
	}
	if len(rows) == 0 {
		// A marker row, so that a restart today does not recompute.
		rows = append(rows, clickhouse.SavingsRow{Day: day, Kind: "none", From: from, Until: day, ComputedAt: now, Scope: "{}", Evidence: "{}"})
	}
	if err := r.store.WriteSavings(ctx, rows); err != nil {
		return nil, err
	}
	r.done = day
	r.runs.Inc()
	r.recs.Set(float64(len(res.Recommendations)))
	r.log.Info("savings recommendations computed", "day", day.Format(time.DateOnly), "recommendations", len(res.Recommendations),
		"alerts", len(alerts), "monthly_saving_usd", res.MonthlySavingUSD.String())
	return res.Recommendations, nil
}

// Row is rec as stored for day.
func Row(rec Recommendation, day, from, now time.Time, published bool) clickhouse.SavingsRow {
	scope, _ := json.Marshal(rec.Scope)
	ev, _ := json.Marshal(rec.Evidence)
	return clickhouse.SavingsRow{Day: day, ID: rec.ID, Kind: rec.Kind, Team: rec.Scope.Team, Project: rec.Scope.Project,
		APIKeyID: rec.Scope.APIKeyID, Provider: rec.Scope.Provider, Model: rec.Scope.Model,
		Scope: string(scope), Action: rec.Action, Evidence: string(ev), Assumption: rec.Assumption,
		CurrentCostUSD: rec.CurrentCostUSD, SavingUSD: rec.SavingUSD, MonthlySavingUSD: rec.MonthlySavingUSD,
		From: from, Until: day, Published: published, ComputedAt: now}
}

// AlertFor is the alert of rec computed on day: kind and category
// savings, the range as its window, CostUSD the scope's cost over the
// range, AmountUSD the estimated monthly saving, and one contributor that
// names the recommendation kind and action with the saving over the range.
func AlertFor(rec Recommendation, day, from, now time.Time) schemas.Alert {
	return schemas.Alert{
		AlertID:     "savings:" + rec.ID + ":" + day.Format(time.DateOnly),
		Kind:        schemas.AlertSavings,
		Category:    schemas.CategorySavings,
		WindowStart: from, WindowEnd: day,
		Team: rec.Scope.Team, Model: rec.Scope.Model,
		CostUSD:    rec.CurrentCostUSD.String(),
		Scope:      rec.Kind + " " + rec.Scope.String(),
		AmountUSD:  rec.MonthlySavingUSD.StringFixed(2),
		DetectedAt: now,
		Contributors: []schemas.Contributor{{Dimension: "recommendation", Key: rec.Kind + ": " + rec.Action,
			CostUSD: rec.SavingUSD.String(), BaselineUSD: rec.CurrentCostUSD.String()}},
	}
}
