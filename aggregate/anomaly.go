package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivis-dev/aivis/schemas"
)

// AnomalyConfig sets the per-(team, model) cost anomaly detector (see
// detector.go) and the scorer that runs it over stored windows.
type AnomalyConfig struct {
	// Alpha is the EWMA smoothing factor of the recent baseline, used while
	// a series has less than two weeks of hour-of-week history.
	Alpha float64 `koanf:"alpha" help:"EWMA smoothing factor of the recent baseline (2/(N+1) for an N-window memory)"`
	// Threshold is how many baseline spreads (σ, or 1.4826·MAD) above the
	// baseline the two-window mean cost must be.
	Threshold float64 `koanf:"threshold" help:"spreads above the baseline (z-score) at which a window is anomalous"`
	// MinHistory is the number of windows a series needs before it is scored.
	MinHistory int `koanf:"min_history" help:"windows a series needs before any of its windows can be anomalous"`
	// MinImpactPicos is the absolute floor: cost above baseline smaller than
	// this never alerts, however large the z-score.
	MinImpactPicos int64 `koanf:"min_impact_picos" help:"cost above the baseline in one window, in picodollars, below which nothing alerts"`
	// MinRelative is the relative floor: cost must exceed the baseline by
	// this share of it (0.5: 50% above).
	MinRelative float64 `koanf:"min_relative" help:"share of the baseline the cost must exceed it by (0.5: 50% above)"`
	// NewSeriesImpactPicos is what a series born after the scorer warmed up
	// (a new model or key, with no baseline) must cost per window to alert.
	NewSeriesImpactPicos int64 `koanf:"new_series_impact_picos" help:"cost per window, in picodollars, at which a new series with no baseline alerts (0: never)"`
	// Persistence is how many anomalous windows in a row open an incident.
	Persistence int `koanf:"persistence" help:"anomalous windows in a row that open an incident"`
	// ResolveWindows is how many normal windows in a row resolve one.
	ResolveWindows int `koanf:"resolve_windows" help:"normal windows in a row that resolve an open incident"`
	// Direction is up (only increases alert) or both.
	Direction string `koanf:"direction" help:"which changes alert: up (cost increases only) or both"`
	// SeasonalWeeks is how many weeks each hour-of-week slot remembers.
	SeasonalWeeks int `koanf:"seasonal_weeks" help:"weeks of history each hour-of-week baseline slot keeps (and the scorer reads back at start)"`
	// SettleWindows is how many windows behind the newest stored window the
	// scorer stays, so that late partitions have landed.
	SettleWindows int `koanf:"settle_windows" help:"windows the scorer stays behind the newest stored one, so that late partitions land"`
	// RescoreWindows is how many settled windows each pass scores again, so
	// that points landing in windows already scored are seen.
	RescoreWindows int `koanf:"rescore_windows" help:"settled windows each pass scores again, to see points that land late in them"`
	// Interval is how often the scorer runs.
	Interval time.Duration `koanf:"interval" help:"how often the scorer runs"`
}

// Anomaly directions.
const (
	DirectionUp   = "up"
	DirectionBoth = "both"
)

// DefaultAnomalyConfig alerts on increases at z ≥ 4 that are 50% and $0.05
// above baseline for two windows in a row, after an hour of history. The
// figures come from the quality table in docs/anomalies.md.
func DefaultAnomalyConfig() AnomalyConfig {
	return AnomalyConfig{
		Alpha:                0.02,
		Threshold:            6,
		MinHistory:           60,
		MinImpactPicos:       100_000_000_000, // $0.10
		MinRelative:          0.5,
		Persistence:          2,
		NewSeriesImpactPicos: 250_000_000_000, // $0.25
		ResolveWindows:       10,
		Direction:            DirectionUp,
		SeasonalWeeks:        4,
		SettleWindows:        2,
		RescoreWindows:       10,
		Interval:             5 * time.Second,
	}
}

func (c AnomalyConfig) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("aggregate.anomaly.%s: "+format, append([]any{key}, args...)...))
	}
	if c.Alpha <= 0 || c.Alpha >= 1 {
		bad("alpha", "%v must be in (0, 1)", c.Alpha)
	}
	if c.Threshold <= 0 {
		bad("threshold", "must be positive (e.g. 4)")
	}
	if c.MinHistory < 2 {
		bad("min_history", "must be at least 2")
	}
	if c.MinImpactPicos < 0 {
		bad("min_impact_picos", "must not be negative")
	}
	if c.MinRelative < 0 {
		bad("min_relative", "must not be negative (e.g. 0.5)")
	}
	if c.NewSeriesImpactPicos < 0 {
		bad("new_series_impact_picos", "must not be negative (0 disables)")
	}
	if c.Persistence < 1 {
		bad("persistence", "must be at least 1")
	}
	if c.ResolveWindows < 1 {
		bad("resolve_windows", "must be at least 1")
	}
	if c.Direction != DirectionUp && c.Direction != DirectionBoth {
		bad("direction", "%q must be up or both", c.Direction)
	}
	if c.SeasonalWeeks < 2 || c.SeasonalWeeks > 12 {
		bad("seasonal_weeks", "%d must be between 2 and 12", c.SeasonalWeeks)
	}
	if c.SettleWindows < 0 {
		bad("settle_windows", "must not be negative")
	}
	if c.RescoreWindows < 0 {
		bad("rescore_windows", "must not be negative")
	}
	if c.Interval <= 0 {
		bad("interval", "must be positive")
	}
	return errors.Join(errs...)
}

// ScoreStore is where the scorer reads settled window totals and keeps its
// scores; the scores carry the EWMA state, so scoring resumes after restart.
type ScoreStore interface {
	// LatestWindow is the newest window start holding any row (zero if none).
	LatestWindow(ctx context.Context) (time.Time, error)
	// LatestScores returns the newest score of every series.
	LatestScores(ctx context.Context) ([]schemas.Score, error)
	// SeriesCosts returns per-(window, team, model) totals with window start
	// in [from, to], ordered by window start.
	SeriesCosts(ctx context.Context, from, to time.Time) ([]schemas.SeriesCost, error)
	// WriteScores stores scores idempotently (keyed by window, team, model).
	WriteScores(ctx context.Context, scores []schemas.Score) error
}

// Scorer turns settled per-window costs into EWMA z-scores.
type Scorer struct {
	cfg     AnomalyConfig
	window  time.Duration
	store   ScoreStore
	alerts  AlertSink
	log     *slog.Logger
	metrics *scorerMetrics
}

// NewScorer returns a scorer over windows of the given length that reads
// and writes store and publishes every anomaly it finds to alerts (nil: not
// published); metrics go to reg.
func NewScorer(cfg AnomalyConfig, window time.Duration, store ScoreStore, alerts AlertSink, reg prometheus.Registerer, log *slog.Logger) *Scorer {
	return &Scorer{cfg: cfg, window: window, store: store, alerts: alerts, log: log, metrics: newScorerMetrics(reg)}
}

// ScoreSettled scores every window from the first one on, settled or not:
// the last pass of a drained pipeline, when no window can change any more.
// Starting from the first window (not after the last one scored) also
// scores series points that landed in windows the periodic passes had
// already gone past, because another partition emitted them later.
func (s *Scorer) ScoreSettled(ctx context.Context) (int, error) {
	return s.score(ctx, 0, true)
}

type seriesKey struct{ team, model string }

// ScoreOnce scores every settled window not scored yet and returns how many
// scores it wrote.
func (s *Scorer) ScoreOnce(ctx context.Context) (int, error) {
	return s.score(ctx, s.cfg.SettleWindows, false)
}

// score scores the windows up to settle windows behind the newest one:
// after the last scored window, or from the first window when fresh.
func (s *Scorer) score(ctx context.Context, settle int, fresh bool) (int, error) {
	latest, err := s.store.LatestWindow(ctx)
	if err != nil || latest.IsZero() {
		return 0, err
	}
	settled := latest.Add(-time.Duration(settle) * s.window)
	var prev []schemas.Score
	if !fresh {
		if prev, err = s.store.LatestScores(ctx); err != nil {
			return 0, fmt.Errorf("loading anomaly state: %w", err)
		}
	}
	state := make(map[seriesKey]schemas.Score, len(prev))
	var from time.Time
	for _, p := range prev {
		state[seriesKey{p.Team, p.Model}] = p
		if p.WindowStart.After(from) {
			from = p.WindowStart
		}
	}
	if from.IsZero() {
		from = time.Unix(0, 0).UTC()
	} else {
		from = from.Add(s.window)
	}
	if from.After(settled) {
		return 0, nil
	}
	costs, err := s.store.SeriesCosts(ctx, from, settled)
	if err != nil {
		return 0, fmt.Errorf("reading window costs: %w", err)
	}
	scores := make([]schemas.Score, 0, len(costs))
	for _, c := range costs {
		k := seriesKey{c.Team, c.Model}
		sc := s.step(state[k], c)
		state[k] = sc
		scores = append(scores, sc)
	}
	if len(scores) == 0 {
		return 0, nil
	}
	sort.SliceStable(scores, func(i, j int) bool { return scores[i].WindowStart.Before(scores[j].WindowStart) })
	if err := s.store.WriteScores(ctx, scores); err != nil {
		return 0, fmt.Errorf("writing anomaly scores: %w", err)
	}
	var alerts []schemas.Alert
	for _, sc := range scores {
		if sc.Anomaly {
			s.metrics.anomalies.Inc()
			s.log.Info("cost anomaly", "window", sc.WindowStart, "team", sc.Team, "model", sc.Model,
				"cost_usd", sc.CostPicos.Float64()/1e12, "baseline_usd", sc.BaselinePicos/1e12, "z", sc.Z)
			alerts = append(alerts, alertFor(sc, s.window, time.Now()))
		}
	}
	// Scores are stored first, so an alert that fails to publish is still
	// in cost_anomalies; alerts are advisory and never block scoring.
	if s.alerts != nil && len(alerts) > 0 {
		if err := s.alerts.Publish(ctx, alerts); err != nil {
			s.metrics.errors.Inc()
			s.log.Warn("publishing cost anomaly alerts", "alerts", len(alerts), "err", err)
		}
	}
	return len(scores), nil
}

// step scores x against the state before it, then updates the state. An
// anomalous point enters the baseline clipped to threshold·σ so that one
// spike does not mask the next.
func (s *Scorer) step(prev schemas.Score, c schemas.SeriesCost) schemas.Score {
	x := c.CostPicos.Float64()
	out := schemas.Score{SeriesCost: c, Observations: prev.Observations + 1}
	if prev.Observations == 0 {
		out.EWMAMean, out.EWMAVar = x, 0
		out.BaselinePicos = x
		return out
	}
	mean, variance := prev.EWMAMean, prev.EWMAVar
	std := math.Sqrt(variance)
	out.BaselinePicos, out.StddevPicos = mean, std
	if int(prev.Observations) >= s.cfg.MinHistory {
		// A flat history has σ = 0; floor σ at 1% of the mean so a
		// constant series does not produce infinite scores.
		sigma := math.Max(std, 0.01*math.Abs(mean))
		if sigma > 0 {
			out.Z = (x - mean) / sigma
		}
		out.Anomaly = out.Z >= s.cfg.Threshold && x-mean >= float64(s.cfg.MinImpactPicos)
		if out.Anomaly {
			x = mean + s.cfg.Threshold*sigma
		}
	}
	d := x - mean
	out.EWMAMean = mean + s.cfg.Alpha*d
	out.EWMAVar = (1 - s.cfg.Alpha) * (variance + s.cfg.Alpha*d*d)
	return out
}

// Run scores every Interval until ctx is done. Failures are logged and
// retried on the next tick: scores are advisory and never block windows.
func (s *Scorer) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := s.ScoreOnce(ctx); err != nil && ctx.Err() == nil {
				s.metrics.errors.Inc()
				s.log.Warn("scoring cost anomalies", "err", err)
			}
		}
	}
}
