package governance

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// Store is where the evaluator reads usage and keeps signals;
// *clickhouse.Store satisfies it.
type Store interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
	WriteGovernanceSignals(ctx context.Context, rows []schemas.GovernanceSignal) error
	WriteAuthFailures(ctx context.Context, rows []schemas.AuthFailureCount) error
}

// AlertSink publishes alerts; aggregate.KafkaAlerts satisfies it.
type AlertSink interface {
	Publish(ctx context.Context, alerts []schemas.Alert) error
}

// AuthFeed delivers ingest's auth-failure counts (from TopicSecurity).
// Fetch returns what arrived since the last call without waiting long;
// Commit marks it consumed once it is stored, Abandon leaves it to be
// fetched again.
type AuthFeed interface {
	Fetch(ctx context.Context) ([]schemas.AuthFailureCount, error)
	Commit(ctx context.Context) error
	Abandon()
}

// Evaluator is the governance actor: every Interval it stores the
// auth-failure counts that arrived, judges the last Window of usage
// against the policy and the signal thresholds, writes a row per incident
// change to governance_signals and publishes it as an alert. It reloads
// the policy file when its content changes; a bad file keeps the previous
// policy.
type Evaluator struct {
	cfg     Config
	store   Store
	alerts  AlertSink
	feed    AuthFeed
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time

	policy  atomic.Pointer[Policy]
	fileSum [sha256.Size]byte
	lastErr atomic.Pointer[error]
	mu      sync.Mutex // serializes evaluations
	open    map[string]*incident
	seeded  bool
	wakeUSD decimal.Decimal
	minUSD  decimal.Decimal
}

// NewEvaluator loads the policy of cfg and returns the actor; alerts and
// feed may be nil (no alerts, no auth-failure counts), metrics go to reg.
func NewEvaluator(cfg Config, store Store, alerts AlertSink, feed AuthFeed, reg prometheus.Registerer, log *slog.Logger) (*Evaluator, error) {
	if log == nil {
		log = slog.Default()
	}
	e := &Evaluator{cfg: cfg, store: store, alerts: alerts, feed: feed, log: log, metrics: newMetrics(reg), now: time.Now,
		open: map[string]*incident{}}
	var err error
	if e.wakeUSD, err = decimal.NewFromString(cfg.DormantWakeUSD); err != nil {
		return nil, fmt.Errorf("governance.dormant_wake_usd: %w", err)
	}
	if e.minUSD, err = decimal.NewFromString(cfg.UnattributedMinUSD); err != nil {
		return nil, fmt.Errorf("governance.unattributed_min_usd: %w", err)
	}
	if cfg.Path != "" {
		p, err := LoadPolicy(cfg.Path)
		if err != nil {
			return nil, err
		}
		e.policy.Store(p)
		e.fileSum = fileSum(cfg.Path)
	}
	return e, nil
}

// SetClock replaces the evaluator's clock (tests).
func (e *Evaluator) SetClock(now func() time.Time) { e.now = now }

// Policy returns the policy in use (nil: everything approved).
func (e *Evaluator) Policy() *Policy { return e.policy.Load() }

// Ready reports the last evaluation's error, if it failed.
func (e *Evaluator) Ready() error {
	if p := e.lastErr.Load(); p != nil && *p != nil {
		return fmt.Errorf("evaluating governance signals: %w", *p)
	}
	return nil
}

// Reload re-reads the policy file; on error the previous policy stays.
func (e *Evaluator) Reload() error {
	if e.cfg.Path == "" {
		return nil
	}
	p, err := LoadPolicy(e.cfg.Path)
	if err != nil {
		e.metrics.reloadErrors.Inc()
		e.log.Error("reloading the governance policy; keeping the previous one", "err", err)
		return err
	}
	e.policy.Store(p)
	e.log.Info("reloaded the governance policy", "path", e.cfg.Path)
	return nil
}

// Run evaluates every Interval and checks the policy file every
// ReloadInterval until ctx is done. Failures are logged and retried on the
// next tick.
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
		e.log.Warn("evaluating governance signals", "err", err)
	}
}

// EvaluateOnce stores the auth-failure counts that arrived, judges the
// last Window and returns the incident changes it wrote and published.
func (e *Evaluator) EvaluateOnce(ctx context.Context) ([]schemas.GovernanceSignal, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.drainFeed(ctx); err != nil {
		return nil, err
	}
	if !e.seeded {
		if err := e.seed(ctx); err != nil {
			return nil, fmt.Errorf("loading the open governance incidents: %w", err)
		}
		e.seeded = true
	}
	now := e.now().UTC().Truncate(time.Second)
	w := window{from: now.Add(-e.cfg.Window), to: now, history: now.Add(-e.cfg.History)}
	findings, err := e.observe(ctx, w)
	if err != nil {
		return nil, err
	}
	changes := e.lifecycle(findings, w, now)
	if err := e.store.WriteGovernanceSignals(ctx, changes); err != nil {
		return nil, fmt.Errorf("writing governance signals: %w", err)
	}
	e.commit(changes)
	e.metrics.evaluations.Inc()
	// Rows are stored first, so a restart knows the incidents already
	// published; alerts are advisory, so a failed publish is counted and
	// logged, not retried.
	if e.alerts != nil && len(changes) > 0 {
		alerts := make([]schemas.Alert, len(changes))
		for i, c := range changes {
			alerts[i] = AlertOf(c)
		}
		if err := e.alerts.Publish(ctx, alerts); err != nil {
			e.metrics.errors.Inc()
			e.log.Warn("publishing governance alerts", "alerts", len(alerts), "err", err)
		}
	}
	for _, c := range changes {
		e.metrics.signals.WithLabelValues(c.Signal, c.Category, c.Status).Inc()
		e.log.Info("governance signal", "signal", c.Signal, "status", c.Status, "subject", c.Subject, "incident", c.IncidentID, "detail", c.Detail)
	}
	counts := map[string]int{}
	for _, inc := range e.open {
		counts[inc.signal()]++
	}
	for _, s := range Signals {
		e.metrics.open.WithLabelValues(s.Name, s.Category).Set(float64(counts[s.Name]))
	}
	return changes, nil
}

func (inc *incident) signal() string {
	for i := range len(inc.id) {
		if inc.id[i] == ':' {
			return inc.id[:i]
		}
	}
	return inc.id
}

// drainFeed stores the auth-failure counts that arrived and commits them.
func (e *Evaluator) drainFeed(ctx context.Context) error {
	if e.feed == nil {
		return nil
	}
	counts, err := e.feed.Fetch(ctx)
	if err != nil {
		return fmt.Errorf("reading auth-failure counts from %s: %w", schemas.TopicSecurity, err)
	}
	if err := e.store.WriteAuthFailures(ctx, counts); err != nil {
		e.feed.Abandon()
		return fmt.Errorf("storing %d auth-failure counts: %w", len(counts), err)
	}
	if err := e.feed.Commit(ctx); err != nil {
		return fmt.Errorf("committing auth-failure counts: %w", err)
	}
	return nil
}

// lifecycle turns findings into incident changes: a new finding opens an
// incident (firing), one that at least doubled updates it, and an open
// incident with no finding resolves. Each signal opens at most MaxSignals
// incidents per evaluation, the largest by cost first.
func (e *Evaluator) lifecycle(findings []finding, w window, now time.Time) []schemas.GovernanceSignal {
	sort.SliceStable(findings, func(a, b int) bool {
		if findings[a].Signal != findings[b].Signal {
			return findings[a].Signal < findings[b].Signal
		}
		if c := findings[a].CostUSD.Cmp(findings[b].CostUSD); c != 0 {
			return c > 0
		}
		return findings[a].Subject < findings[b].Subject
	})
	var out []schemas.GovernanceSignal
	seen := map[string]bool{}
	opened := map[string]int{}
	for i := range findings {
		f := &findings[i]
		k := f.key()
		if seen[k] {
			continue
		}
		seen[k] = true
		f.Category = categoryOf(f.Signal)
		f.WindowStart, f.WindowEnd, f.DetectedAt = w.from, w.to, now
		inc, ok := e.open[k]
		switch {
		case !ok:
			if opened[f.Signal] >= e.cfg.MaxSignals {
				e.metrics.suppressed.WithLabelValues(f.Signal).Inc()
				continue
			}
			opened[f.Signal]++
			f.IncidentID, f.Status, f.Update = incidentID(f.Signal, f.Subject, now), schemas.AlertFiring, 0
		case inc.grew(f):
			f.IncidentID, f.Status, f.Update = inc.id, schemas.AlertUpdated, inc.update+1
		default:
			continue
		}
		out = append(out, f.GovernanceSignal)
	}
	keys := make([]string, 0, len(e.open))
	for k := range e.open {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		inc := e.open[k]
		signal, subject := splitKey(k)
		out = append(out, schemas.GovernanceSignal{
			Signal: signal, Category: categoryOf(signal), Subject: subject, IncidentID: inc.id,
			Status: schemas.AlertResolved, Update: inc.update + 1,
			WindowStart: w.from, WindowEnd: w.to, DetectedAt: now,
			Detail: "no longer observed in the last " + e.cfg.Window.String(),
		})
	}
	return out
}

// commit records the changes written as the incidents' state.
func (e *Evaluator) commit(changes []schemas.GovernanceSignal) {
	for _, c := range changes {
		k := c.Signal + "\x00" + c.Subject
		if c.Status == schemas.AlertResolved {
			delete(e.open, k)
			continue
		}
		e.open[k] = &incident{id: c.IncidentID, update: c.Update, events: c.Events, cost: c.CostUSD, started: c.DetectedAt}
	}
}

func splitKey(k string) (signal, subject string) {
	for i := range len(k) {
		if k[i] == 0 {
			return k[:i], k[i+1:]
		}
	}
	return k, ""
}

// seed loads the incidents still open from governance_signals, so that a
// restarted evaluator neither fires them again nor forgets to resolve them.
func (e *Evaluator) seed(ctx context.Context) error {
	since := e.now().Add(-e.cfg.History)
	rows, err := e.store.Query(ctx, `SELECT signal, subject, incident_id, status, update, events, cost_usd, detected_at
FROM governance_signals FINAL
WHERE detected_at >= toDateTime(?)
ORDER BY incident_id, update`, since.Unix())
	if err != nil {
		return err
	}
	defer rows.Close()
	latest := map[string]schemas.GovernanceSignal{}
	for rows.Next() {
		var s schemas.GovernanceSignal
		if err := rows.Scan(&s.Signal, &s.Subject, &s.IncidentID, &s.Status, &s.Update, &s.Events, &s.CostUSD, &s.DetectedAt); err != nil {
			return err
		}
		latest[s.IncidentID] = s
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, s := range latest {
		if s.Status != schemas.AlertResolved {
			e.open[s.Signal+"\x00"+s.Subject] = &incident{id: s.IncidentID, update: s.Update, events: s.Events, cost: s.CostUSD, started: s.DetectedAt}
		}
	}
	return nil
}

// fileSum hashes the policy file; an unreadable file hashes as its error,
// so that it counts as a change and the reload reports it.
func fileSum(path string) [sha256.Size]byte {
	data, err := os.ReadFile(path)
	if err != nil {
		data = []byte("error: " + err.Error())
	}
	return sha256.Sum256(data)
}
