package budget

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// Thresholds an alert is raised for, once per budget and period each.
const (
	ThresholdSoft     = "soft"
	ThresholdHard     = "hard"
	ThresholdForecast = "forecast"
)

// AlertSink publishes alerts; aggregate.KafkaAlerts satisfies it. Publish
// returns once they are delivered.
type AlertSink interface {
	Publish(ctx context.Context, alerts []schemas.Alert) error
}

// Assess says the state of a budget and which thresholds it has crossed:
// the spend reached soft or hard, or the forecast (with at least
// MinForecastHours of history) runs out before the period ends while the
// amount is not spent yet.
func Assess(s Spec, spent decimal.Decimal, fc Forecast, periodEnd time.Time) (state string, crossed []string) {
	state = schemas.BudgetOK
	if s.Forecast && fc.Hours >= MinForecastHours && spent.LessThan(s.Amount) &&
		!fc.ExhaustsAt.IsZero() && fc.ExhaustsAt.Before(periodEnd) && fc.Overrun(s.Amount).IsPositive() {
		state = schemas.BudgetAtRisk
		crossed = append(crossed, ThresholdForecast)
	}
	if !s.Soft.IsZero() && spent.GreaterThanOrEqual(s.Soft) {
		state = schemas.BudgetSoft
		crossed = append(crossed, ThresholdSoft)
	}
	if spent.GreaterThanOrEqual(s.Hard) {
		state = schemas.BudgetHard
		crossed = append(crossed, ThresholdHard)
	}
	return state, crossed
}

// Evaluator is the budget actor: every Interval it evaluates every budget,
// writes budget_status, sets the per-budget metrics and publishes an alert
// the first time a period crosses a threshold. It reloads the budgets file
// when its content changes; a bad file keeps the previous budgets.
type Evaluator struct {
	cfg     Config
	store   Store
	alerts  AlertSink
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time

	specs   atomic.Pointer[[]Spec]
	fileSum [sha256.Size]byte
	lastErr atomic.Pointer[error]
	mu      sync.Mutex          // serializes evaluations
	alerted map[string][]string // "budget@periodStartUnix" -> thresholds alerted
	seeded  bool
}

// NewEvaluator loads the budgets of cfg and returns the actor; alerts nil
// publishes none, metrics go to reg.
func NewEvaluator(cfg Config, store Store, alerts AlertSink, reg prometheus.Registerer, log *slog.Logger) (*Evaluator, error) {
	if log == nil {
		log = slog.Default()
	}
	e := &Evaluator{cfg: cfg, store: store, alerts: alerts, log: log, metrics: newMetrics(reg), now: time.Now, alerted: map[string][]string{}}
	var specs []Spec
	if cfg.Path != "" {
		var err error
		if specs, err = LoadFile(cfg.Path); err != nil {
			return nil, err
		}
		e.fileSum = fileSum(cfg.Path)
	}
	e.setSpecs(specs)
	return e, nil
}

// SetClock replaces the evaluator's clock (tests).
func (e *Evaluator) SetClock(now func() time.Time) { e.now = now }

// Budgets returns the budgets in use.
func (e *Evaluator) Budgets() []Spec { return *e.specs.Load() }

func (e *Evaluator) setSpecs(specs []Spec) {
	if old := e.specs.Load(); old != nil {
		for _, s := range *old {
			if !slices.ContainsFunc(specs, func(n Spec) bool { return n.ID == s.ID }) {
				e.metrics.forget(s.ID)
			}
		}
	}
	e.specs.Store(&specs)
}

// Ready reports the last evaluation's error, if it failed.
func (e *Evaluator) Ready() error {
	if p := e.lastErr.Load(); p != nil && *p != nil {
		return fmt.Errorf("evaluating budgets: %w", *p)
	}
	return nil
}

// Reload re-reads the budgets file; on error the previous budgets stay.
func (e *Evaluator) Reload() error {
	if e.cfg.Path == "" {
		return nil
	}
	specs, err := LoadFile(e.cfg.Path)
	if err != nil {
		e.metrics.reloadErrors.Inc()
		e.log.Error("reloading budgets; keeping the previous ones", "err", err)
		return err
	}
	e.setSpecs(specs)
	e.log.Info("reloaded budgets", "path", e.cfg.Path, "budgets", len(specs))
	return nil
}

// Run evaluates every Interval and checks the file every ReloadInterval
// until ctx is done. Failures are logged and retried on the next tick.
func (e *Evaluator) Run(ctx context.Context) error {
	eval := time.NewTicker(e.cfg.Interval)
	defer eval.Stop()
	var reload <-chan time.Time
	if e.cfg.Path != "" && e.cfg.ReloadInterval > 0 {
		t := time.NewTicker(e.cfg.ReloadInterval)
		defer t.Stop()
		reload = t.C
	}
	e.tick(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-reload:
			if sum := fileSum(e.cfg.Path); sum != e.fileSum {
				// Remember bad content too, so that it is reported once.
				e.fileSum = sum
				_ = e.Reload()
			}
		case <-eval.C:
			e.tick(ctx)
		}
	}
}

func (e *Evaluator) tick(ctx context.Context) {
	_, err := e.EvaluateOnce(ctx)
	if ctx.Err() != nil {
		return
	}
	e.lastErr.Store(&err)
	if err != nil {
		e.metrics.errors.Inc()
		e.log.Warn("evaluating budgets", "err", err)
	}
}

// EvaluateOnce evaluates every budget now, writes their status and
// publishes the alerts of thresholds newly crossed. A budget whose spend
// cannot be read is skipped (and its error returned, joined) so that one
// bad scope does not stop the others.
func (e *Evaluator) EvaluateOnce(ctx context.Context) ([]schemas.BudgetStatus, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	if !e.seeded {
		prev, err := LatestStatus(ctx, e.store)
		if err != nil {
			return nil, fmt.Errorf("loading the alerts already raised: %w", err)
		}
		for _, p := range prev {
			e.alerted[alertKey(p.BudgetID, p.PeriodStart)] = p.Alerted
		}
		e.seeded = true
	}
	now := e.now().UTC()
	specs := e.Budgets()
	out := make([]schemas.BudgetStatus, 0, len(specs))
	var alerts []schemas.Alert
	for _, s := range specs {
		st, fresh, err := e.evaluate(ctx, s, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, st)
		for _, th := range fresh {
			alerts = append(alerts, AlertFor(st, th, now))
		}
	}
	// Forget the alerts of periods that are over.
	current := make(map[string]bool, len(specs))
	for _, s := range specs {
		start, _ := PeriodBounds(s.Period, s.Location, now)
		current[alertKey(s.ID, start)] = true
	}
	for k := range e.alerted {
		if !current[k] {
			delete(e.alerted, k)
		}
	}
	if err := e.store.WriteBudgetStatus(ctx, out); err != nil {
		return nil, errors.Join(append(errs, fmt.Errorf("writing budget status: %w", err))...)
	}
	e.metrics.evaluations.Inc()
	// Status is stored first, with the thresholds marked alerted, so a
	// restart does not alert them again; alerts are advisory, so a failed
	// publish is counted and logged, not retried.
	if e.alerts != nil && len(alerts) > 0 {
		if err := e.alerts.Publish(ctx, alerts); err != nil {
			e.metrics.errors.Inc()
			e.log.Warn("publishing budget alerts", "alerts", len(alerts), "err", err)
		}
	}
	for _, a := range alerts {
		e.metrics.alerts.WithLabelValues(a.Threshold).Inc()
		e.log.Info("budget alert", "budget", a.BudgetID, "threshold", a.Threshold, "spent_usd", a.CostUSD, "amount_usd", a.AmountUSD)
	}
	return out, errors.Join(errs...)
}

// evaluate reads, forecasts and assesses one budget; it returns its status
// and the thresholds crossed for the first time in this period.
func (e *Evaluator) evaluate(ctx context.Context, s Spec, now time.Time) (schemas.BudgetStatus, []string, error) {
	start, end := PeriodBounds(s.Period, s.Location, now)
	from := start
	if h := now.Add(-time.Duration(e.cfg.HistoryWeeks) * 7 * 24 * time.Hour); h.Before(from) {
		from = h
	}
	sp, err := ReadSpend(ctx, e.store, s, from, start, now)
	if err != nil {
		return schemas.BudgetStatus{}, nil, err
	}
	fc := Predict(Input{History: sp.Hourly, Now: now, Spent: sp.Spent, Amount: s.Amount, PeriodEnd: end, Weeks: e.cfg.HistoryWeeks})
	state, crossed := Assess(s, sp.Spent, fc, end)
	key := alertKey(s.ID, start)
	done := e.alerted[key]
	var fresh []string
	for _, th := range crossed {
		if !slices.Contains(done, th) {
			fresh = append(fresh, th)
			done = append(done, th)
		}
	}
	e.alerted[key] = done
	st := schemas.BudgetStatus{
		BudgetID: s.ID, Name: s.Name, Scope: s.Scope.String(), Period: s.Period, Timezone: s.Location.String(),
		PeriodStart: start.UTC(), PeriodEnd: end.UTC(),
		AmountUSD: s.Amount, SoftUSD: s.Soft, HardUSD: s.Hard, SpentUSD: sp.Spent,
		ForecastUSD: fc.AtEnd, ForecastLowUSD: fc.Low, ForecastHighUSD: fc.High, ForecastMethod: fc.Method,
		State: state, Alerted: slices.Clone(done), EvaluatedAt: now,
	}
	if !fc.ExhaustsAt.IsZero() && fc.ExhaustsAt.Before(end) {
		st.ExhaustsAt = fc.ExhaustsAt.UTC()
	}
	e.metrics.set(s.ID, sp.Spent, fc.AtEnd, s.Amount)
	return st, fresh, nil
}

func alertKey(id string, periodStart time.Time) string {
	return id + "@" + strconv.FormatInt(periodStart.Unix(), 10)
}

// AlertFor is the alert of one threshold crossed by a budget's status. Its
// id is stable per (budget, period, threshold), so subscribers can
// deduplicate a redelivery.
func AlertFor(st schemas.BudgetStatus, threshold string, now time.Time) schemas.Alert {
	a := schemas.Alert{
		AlertID:     schemas.AlertBudget + ":" + st.BudgetID + ":" + strconv.FormatInt(st.PeriodStart.Unix(), 10) + ":" + threshold,
		Kind:        schemas.AlertBudget,
		Category:    schemas.CategoryCost,
		WindowStart: st.PeriodStart, WindowEnd: st.PeriodEnd,
		CostUSD:    st.SpentUSD.String(),
		DetectedAt: now.UTC(),
		BudgetID:   st.BudgetID, Scope: st.Scope, Period: st.Period, Threshold: threshold,
		AmountUSD:   st.AmountUSD.String(),
		ForecastUSD: st.ForecastUSD.String(),
	}
	for _, kv := range strings.Split(st.Scope, ",") {
		switch k, v, _ := strings.Cut(kv, "="); k {
		case "team":
			a.Team = v
		case "model":
			a.Model = v
		}
	}
	if !st.ExhaustsAt.IsZero() {
		t := st.ExhaustsAt
		a.ExhaustsAt = &t
	}
	return a
}

// fileSum hashes the budgets file; an unreadable file hashes as its error,
// so that it counts as a change and the reload reports it.
func fileSum(path string) [sha256.Size]byte {
	data, err := os.ReadFile(path)
	if err != nil {
		data = []byte("error: " + err.Error())
	}
	return sha256.Sum256(data)
}
