package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// AnomalyConfig sets the per-(team, model) cost anomaly detector (see
// detector.go) and the scorer that runs it over stored windows.
type AnomalyConfig struct {
	// Alpha is the EWMA smoothing factor of the recent baseline, used while
	// a series has less than two days of hour-of-day history.
	Alpha float64 `koanf:"alpha" help:"EWMA smoothing factor of the recent baseline, used until an hour has two days of history (2/(N+1) for an N-window memory)"`
	// Threshold is how many spreads above the baseline the cost summed over
	// a span must be.
	Threshold float64 `koanf:"threshold" help:"spreads above the baseline (z-score) at which the cost of a span of windows is anomalous"`
	// MaxSpan is the longest span of windows whose summed cost is tested;
	// the spans are 1, 5, 15 and 60 windows up to it, and it.
	MaxSpan int `koanf:"max_span" help:"longest span of windows whose summed cost is tested against the summed baseline (spans: 1, 5, 15, 60 up to it, and it); long spans find slow or small changes on sparse series"`
	// LevelError is how far, as a share of the baseline, the level of a
	// series may stray from its history without being noise.
	LevelError float64 `koanf:"level_error" help:"share of the baseline by which a series' level may stray from its history, added to the spread (0.1: 10%)"`
	// MinHistory is the number of windows a series needs before it is scored.
	MinHistory int `koanf:"min_history" help:"windows a series needs before any of its windows can be anomalous"`
	// MinImpactPicos is the absolute floor: cost above baseline, a window
	// on average over the span, smaller than this never alerts, however
	// large the z-score.
	MinImpactPicos int64 `koanf:"min_impact_picos" help:"cost above the baseline a window, on average over the span tested, in picodollars, below which nothing alerts"`
	// MinRelative is the relative floor: cost must exceed the baseline by
	// this share of it (0.5: 50% above).
	MinRelative float64 `koanf:"min_relative" help:"share of the baseline the cost must exceed it by (0.5: 50% above)"`
	// NewSeriesImpactPicos is what a series born after the scorer warmed up
	// (a new model or key, with no baseline) must cost per window to alert.
	NewSeriesImpactPicos int64 `koanf:"new_series_impact_picos" help:"cost per window, in picodollars, at which a new series with no baseline alerts (0: never)"`
	// MinBaselineRequests is how many typical requests the baseline of a
	// span must hold for its spread to be tested. The series' dispersion
	// (variance per unit of expected cost) is the size of its typical
	// request, so baseline ÷ dispersion is the requests the span expects;
	// below this the span is too sparse to tell a costly request from a
	// change, and it alerts on its size: an excess of ten typical requests
	// and NewSeriesImpactPicos a window.
	MinBaselineRequests float64 `koanf:"min_baseline_requests" help:"typical requests (baseline ÷ dispersion) a span's baseline must hold to be tested on its spread; sparser spans alert on their size (an excess of ten typical requests and new_series_impact_picos a window)"`
	// Persistence is how many windows in a row must pass to open an
	// incident.
	Persistence int `koanf:"persistence" help:"windows in a row that must pass the test to open an incident"`
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

// DefaultAnomalyConfig alerts on increases of the cost of a span of 1 to
// 60 windows at z ≥ 5 that are 50% above baseline and half a cent a window
// above it, in two windows in a row, after an hour of history. The figures
// come from the quality table in docs/anomalies.md.
func DefaultAnomalyConfig() AnomalyConfig {
	return AnomalyConfig{
		Alpha:                0.02,
		Threshold:            5,
		MaxSpan:              60,
		LevelError:           0.1,
		MinHistory:           60,
		MinImpactPicos:       5_000_000_000, // $0.005
		MinRelative:          0.5,
		Persistence:          2,
		NewSeriesImpactPicos: 250_000_000_000, // $0.25
		MinBaselineRequests:  0.5,
		ResolveWindows:       10,
		Direction:            DirectionUp,
		SeasonalWeeks:        4,
		SettleWindows:        2,
		RescoreWindows:       10,
		Interval:             5 * time.Second,
	}
}

// spans are the window counts the detector sums: 1, 5, 15 and 60 up to
// MaxSpan, and MaxSpan.
func (c AnomalyConfig) spans() []int {
	var out []int
	for _, k := range []int{1, 2, 5, 10, 30, 60} {
		if k < c.MaxSpan {
			out = append(out, k)
		}
	}
	return append(out, max(1, c.MaxSpan))
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
	if c.MaxSpan < 1 || c.MaxSpan > 10_000 {
		bad("max_span", "%d must be between 1 and 10000 windows (e.g. 60)", c.MaxSpan)
	}
	if c.LevelError < 0 || c.LevelError >= 1 {
		bad("level_error", "%v must be in [0, 1) (e.g. 0.1)", c.LevelError)
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
	if c.MinBaselineRequests < 0 {
		bad("min_baseline_requests", "must not be negative (0 tests every span on its spread)")
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
// scores and the marks of the incident alerts it published.
type ScoreStore interface {
	// LatestWindow is the newest window start holding any row (zero if none).
	LatestWindow(ctx context.Context) (time.Time, error)
	// SeriesCosts returns per-(window, team, model) totals with window start
	// in [from, to], ordered by window start.
	SeriesCosts(ctx context.Context, from, to time.Time) ([]schemas.SeriesCost, error)
	// WriteScores stores scores idempotently (keyed by window, team, model).
	WriteScores(ctx context.Context, scores []schemas.Score) error
	// LatestScored is the newest window start holding a score (zero if none).
	LatestScored(ctx context.Context) (time.Time, error)
	// PublishedIncidents returns every score written with an incident mark
	// (IncidentID set) for windows from since on.
	PublishedIncidents(ctx context.Context, since time.Time) ([]schemas.Score, error)
}

// ContributorSource explains an anomalous window: the sub-keys of the
// series (API keys, projects, reported models) whose cost rose most against
// their own mean over the baselineWindows windows before it. A ScoreStore
// that is also a ContributorSource has its firing and updated alerts carry
// contributors.
type ContributorSource interface {
	Contributors(ctx context.Context, team, model string, windowStart time.Time, window time.Duration, baselineWindows int) ([]schemas.Contributor, error)
}

// Scorer runs the detector over settled window costs and publishes each
// incident's changes once: firing, updated when the detector says it grew,
// resolved. It keeps the detector's state through the newest final window
// (RescoreWindows behind the settled one) and each pass scores the windows
// after it again on a copy, so that points landing late in them count. At
// start it rebuilds that state from SeasonalWeeks of stored windows and the
// incident marks of cost_anomalies, so a restart neither fires an open
// incident again nor loses it.
type Scorer struct {
	// mu serializes passes: the drain's final pass (ScoreSettled) can
	// start while Run's periodic pass is still running.
	mu      sync.Mutex
	cfg     AnomalyConfig
	window  time.Duration
	store   ScoreStore
	alerts  AlertSink
	log     *slog.Logger
	metrics *scorerMetrics

	det       *Detector            // state through committed; nil until loaded
	committed time.Time            // the last window stepped into det
	series    map[string]seriesKey // every series det knows, by detector key
	sent      map[string]bool      // alert ids published
	open      map[string]openIncident
	marks     map[windowKey]schemas.Score // incident marks of recent windows
	written   map[windowKey]scoreSig      // what was last written for recent windows
	pending   []pendingAlert              // committed alerts whose publishing failed
}

type seriesKey struct{ team, model string }

type windowKey struct {
	series string
	ws     time.Time
}

type scoreSig struct {
	cost      schemas.Picos128
	anomalous bool
	mark      string
}

// openIncident is a published incident not yet published as resolved.
type openIncident struct {
	series string
	update int
}

// pendingAlert is an alert with the window whose score row will carry its
// mark once it is published.
type pendingAlert struct {
	alert schemas.Alert
	at    windowKey
	score schemas.Score
}

// stepped is one scored window of one series in a pass.
type stepped struct {
	key     string
	sk      seriesKey
	cost    schemas.Picos128
	present bool
	v       Verdict
	trs     []Transition
}

// NewScorer returns a scorer over windows of the given length that reads
// and writes store and publishes incident changes to alerts (nil: not
// published); metrics go to reg.
func NewScorer(cfg AnomalyConfig, window time.Duration, store ScoreStore, alerts AlertSink, reg prometheus.Registerer, log *slog.Logger) *Scorer {
	return &Scorer{cfg: cfg, window: window, store: store, alerts: alerts, log: log, metrics: newScorerMetrics(reg)}
}

// ScoreSettled scores every window up to the newest one as final: the last
// pass of a drained pipeline, when no window can change any more.
func (s *Scorer) ScoreSettled(ctx context.Context) (int, error) {
	return s.score(ctx, 0, true)
}

// ScoreOnce scores the settled windows and publishes the incident changes
// not published yet; it returns how many scores it wrote.
func (s *Scorer) ScoreOnce(ctx context.Context) (int, error) {
	return s.score(ctx, s.cfg.SettleWindows, false)
}

func seriesID(sk seriesKey) string { return sk.team + "/" + sk.model }

func (s *Scorer) score(ctx context.Context, settle int, final bool) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	latest, err := s.store.LatestWindow(ctx)
	if err != nil || latest.IsZero() {
		return 0, err
	}
	settled := latest.Add(-time.Duration(settle) * s.window)
	if s.det == nil {
		if err := s.load(ctx, settled); err != nil {
			return 0, err
		}
	}
	commitTo := settled.Add(-time.Duration(s.cfg.RescoreWindows) * s.window)
	if final {
		commitTo = settled
	}
	from := s.committed.Add(s.window)
	if from.After(settled) {
		return 0, nil
	}
	costs, err := s.store.SeriesCosts(ctx, from, settled)
	if err != nil {
		return 0, fmt.Errorf("reading window costs: %w", err)
	}
	byWindow := groupByWindow(costs)

	var committed, tentative []stepped
	for ws := from; !ws.After(commitTo); ws = ws.Add(s.window) {
		committed = append(committed, s.stepWindow(s.det, ws, byWindow[ws])...)
		s.committed = ws
	}
	tent := s.det.Clone()
	for ws := s.committed.Add(s.window); !ws.After(settled); ws = ws.Add(s.window) {
		tentative = append(tentative, s.stepWindow(tent, ws, byWindow[ws])...)
	}

	// Committed alerts that fail to publish wait in pending; tentative ones
	// are derived again by the next pass.
	todo := s.pending
	s.pending = nil
	todo = append(todo, s.alertsFor(committed)...)
	nCommitted := len(todo)
	todo = append(todo, s.alertsFor(tentative)...)
	todo = append(todo, s.withdrawn(tent, settled, byWindow[settled])...)
	todo = dedupAlerts(todo, s.sent)
	published := s.publish(ctx, todo, nCommitted)

	scores := s.scoresToWrite(append(committed, tentative...), published)
	s.prune()
	if len(scores) == 0 {
		return 0, nil
	}
	if err := s.store.WriteScores(ctx, scores); err != nil {
		return 0, fmt.Errorf("writing anomaly scores: %w", err)
	}
	for _, sc := range scores {
		s.written[windowKey{seriesID(seriesKey{sc.Team, sc.Model}), sc.WindowStart}] = sigOf(sc)
	}
	return len(scores), nil
}

func groupByWindow(costs []schemas.SeriesCost) map[time.Time][]schemas.SeriesCost {
	out := map[time.Time][]schemas.SeriesCost{}
	for _, c := range costs {
		out[c.WindowStart] = append(out[c.WindowStart], c)
	}
	return out
}

// stepWindow scores one window of every series on d: the series with a
// cost row, and every series d already knows at zero cost, so that an
// incident of a series that stopped still resolves.
func (s *Scorer) stepWindow(d *Detector, ws time.Time, present []schemas.SeriesCost) []stepped {
	out := make([]stepped, 0, len(present))
	seen := make(map[string]bool, len(present))
	for _, c := range present {
		sk := seriesKey{c.Team, c.Model}
		key := seriesID(sk)
		s.series[key] = sk
		seen[key] = true
		v, trs := d.Step(key, ws, c.CostPicos)
		out = append(out, stepped{key: key, sk: sk, cost: c.CostPicos, present: true, v: v, trs: trs})
	}
	for key, sk := range s.series {
		if seen[key] {
			continue
		}
		if last := d.Last(key); last.IsZero() || !last.Before(ws) {
			continue
		}
		v, trs := d.Step(key, ws, schemas.Picos128{})
		out = append(out, stepped{key: key, sk: sk, v: v, trs: trs})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// load rebuilds the detector from SeasonalWeeks of stored windows before
// the RescoreWindows the passes score again, and learns from the incident
// marks which alerts subscribers already have.
func (s *Scorer) load(ctx context.Context, settled time.Time) error {
	s.det = NewDetector(s.cfg, s.window)
	s.series = map[string]seriesKey{}
	s.sent = map[string]bool{}
	s.open = map[string]openIncident{}
	s.marks = map[windowKey]schemas.Score{}
	s.written = map[windowKey]scoreSig{}
	since := settled.Add(-time.Duration(s.cfg.SeasonalWeeks) * 7 * 24 * time.Hour).Truncate(s.window)
	s.committed = since.Add(-s.window)
	marks, err := s.store.PublishedIncidents(ctx, since)
	if err != nil {
		s.det = nil
		return fmt.Errorf("loading published incidents: %w", err)
	}
	for _, m := range marks {
		key := seriesID(seriesKey{m.Team, m.Model})
		s.sent[alertID(m.IncidentID, m.IncidentStatus, int(m.IncidentUpdate))] = true
		s.marks[windowKey{key, m.WindowStart}] = m
		switch m.IncidentStatus {
		case StatusResolved:
			s.open[m.IncidentID] = openIncident{series: "", update: -1}
		default:
			if o, ok := s.open[m.IncidentID]; !ok || (o.update >= 0 && int(m.IncidentUpdate) > o.update) {
				s.open[m.IncidentID] = openIncident{series: key, update: int(m.IncidentUpdate)}
			}
		}
	}
	for id, o := range s.open {
		if o.update < 0 {
			delete(s.open, id)
		}
	}
	commitTo := settled.Add(-time.Duration(s.cfg.RescoreWindows) * s.window)
	if !commitTo.Before(since) {
		costs, err := s.store.SeriesCosts(ctx, since, commitTo)
		if err != nil {
			s.det = nil
			return fmt.Errorf("reading %d weeks of window costs: %w", s.cfg.SeasonalWeeks, err)
		}
		scored, err := s.store.LatestScored(ctx)
		if err != nil {
			s.det = nil
			return fmt.Errorf("reading the newest anomaly score: %w", err)
		}
		byWindow := groupByWindow(costs)
		var replay, unscored []stepped
		for ws := since; !ws.After(commitTo); ws = ws.Add(s.window) {
			st := s.stepWindow(s.det, ws, byWindow[ws])
			replay = append(replay, st...)
			if ws.After(scored) {
				unscored = append(unscored, st...)
			}
			s.committed = ws
		}
		// Windows the scorer never scored (it was down, or this is its
		// first start) get their scores; the rest are in the store already.
		if scores := s.scoresToWrite(unscored, nil); len(scores) > 0 {
			if err := s.store.WriteScores(ctx, scores); err != nil {
				s.det = nil
				return fmt.Errorf("writing anomaly scores: %w", err)
			}
		}
		// Incidents that opened and resolved while nobody published them
		// are history, not news; the rest (an open incident, or the end of
		// one whose firing went out) is published.
		done := map[string]bool{}
		for _, st := range replay {
			for _, tr := range st.trs {
				if tr.Incident.Status == StatusResolved && !s.sent[alertID(tr.Incident.ID, StatusFiring, 0)] {
					done[tr.Incident.ID] = true
				}
			}
		}
		for _, p := range s.alertsFor(replay) {
			if !done[p.alert.IncidentID] && !s.sent[p.alert.AlertID] {
				s.pending = append(s.pending, p)
			}
		}
	}
	s.log.Info("anomaly scorer state rebuilt", "since", since, "through", s.committed,
		"series", len(s.series), "published_incidents", len(marks), "open_incidents", len(s.det.Open()))
	return nil
}

func alertID(incident, status string, update int) string {
	return schemas.AlertCostAnomaly + ":" + incident + ":" + status + ":" + strconv.Itoa(update)
}

// alertsFor turns the transitions of scored windows into alerts.
func (s *Scorer) alertsFor(steps []stepped) []pendingAlert {
	var out []pendingAlert
	for _, st := range steps {
		for _, tr := range st.trs {
			at := windowKey{st.key, tr.Verdict.WindowStart}
			cost := schemas.PicosOf(0)
			if st.present && tr.Verdict.WindowStart.Equal(st.v.WindowStart) {
				cost = st.cost
			}
			a := alertFor(tr, st.sk, cost, s.window)
			out = append(out, pendingAlert{alert: a, at: at, score: scoreOf(st.sk, cost, tr.Verdict)})
		}
	}
	return out
}

// withdrawn resolves the published incidents that the newest pass no longer
// sees open (points that landed late took the anomaly away): subscribers
// hear the end of every incident they heard the start of.
func (s *Scorer) withdrawn(d *Detector, settled time.Time, present []schemas.SeriesCost) []pendingAlert {
	open := d.Open()
	var out []pendingAlert
	for id, o := range s.open {
		if inc, ok := open[o.series]; ok && inc.ID == id {
			continue
		}
		sk := s.series[o.series]
		cost := schemas.PicosOf(0)
		for _, c := range present {
			if c.Team == sk.team && c.Model == sk.model {
				cost = c.CostPicos
			}
		}
		v := Verdict{WindowStart: settled, CostPicos: cost}
		inc := Incident{ID: id, Status: StatusResolved, ResolvedAt: settled, Update: o.update + 1}
		a := alertFor(Transition{Incident: inc, Verdict: v}, sk, cost, s.window)
		out = append(out, pendingAlert{alert: a, at: windowKey{o.series, settled}, score: scoreOf(sk, cost, v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].alert.AlertID < out[j].alert.AlertID })
	return out
}

// dedupAlerts drops alerts already sent and repeats within the list,
// keeping the first (the committed one when both are there).
func dedupAlerts(in []pendingAlert, sent map[string]bool) []pendingAlert {
	seen := map[string]bool{}
	out := in[:0:0]
	for _, p := range in {
		if sent[p.alert.AlertID] || seen[p.alert.AlertID] {
			continue
		}
		seen[p.alert.AlertID] = true
		out = append(out, p)
	}
	return out
}

// publish adds contributors to firing and updated alerts and publishes
// them; it returns the ones delivered. The first nCommitted come from final
// windows and are kept for the next pass when publishing fails.
func (s *Scorer) publish(ctx context.Context, todo []pendingAlert, nCommitted int) []pendingAlert {
	if len(todo) == 0 {
		return nil
	}
	now := time.Now().UTC()
	src, _ := s.store.(ContributorSource)
	baselineWindows := max(10, int(time.Hour/s.window))
	alerts := make([]schemas.Alert, len(todo))
	for i := range todo {
		a := &todo[i].alert
		a.DetectedAt = now
		if src != nil && a.Status != schemas.AlertResolved && a.Contributors == nil {
			cs, err := src.Contributors(ctx, a.Team, a.Model, a.WindowStart, s.window, baselineWindows)
			if err != nil {
				s.log.Warn("explaining a cost anomaly", "incident", a.IncidentID, "err", err)
			}
			a.Contributors = cs
		}
		alerts[i] = *a
	}
	if s.alerts != nil {
		if err := s.alerts.Publish(ctx, alerts); err != nil {
			s.metrics.errors.Inc()
			s.log.Warn("publishing cost anomaly alerts", "alerts", len(alerts), "err", err)
			s.pending = append(s.pending, todo[:min(nCommitted, len(todo))]...)
			return nil
		}
	}
	for _, p := range todo {
		a := p.alert
		s.sent[a.AlertID] = true
		update := updateOf(a.AlertID)
		if a.Status == schemas.AlertResolved {
			delete(s.open, a.IncidentID)
		} else {
			s.open[a.IncidentID] = openIncident{series: p.at.series, update: update}
		}
		if a.Status == schemas.AlertFiring {
			s.metrics.anomalies.Inc()
		}
		s.log.Info("cost anomaly", "status", a.Status, "incident", a.IncidentID, "window", a.WindowStart,
			"team", a.Team, "model", a.Model, "cost_usd", a.CostUSD, "baseline_usd", a.BaselineUSD, "z", a.ZScore)
		m := p.score
		m.IncidentID, m.IncidentStatus, m.IncidentUpdate = a.IncidentID, a.Status, uint32(update)
		s.marks[p.at] = m
	}
	return todo
}

func updateOf(alertID string) int {
	n, _ := strconv.Atoi(alertID[strings.LastIndexByte(alertID, ':')+1:])
	return n
}

func scoreOf(sk seriesKey, cost schemas.Picos128, v Verdict) schemas.Score {
	return schemas.Score{
		SeriesCost:    schemas.SeriesCost{WindowStart: v.WindowStart, Team: sk.team, Model: sk.model, CostPicos: cost},
		BaselinePicos: v.BaselinePicos, StddevPicos: v.ScalePicos, Z: v.Z, Observations: v.Observations,
		Anomaly: v.Anomalous, EWMAMeanPicos: v.EWMAMean, EWMAVar: v.EWMAVar,
	}
}

func sigOf(sc schemas.Score) scoreSig {
	return scoreSig{cost: sc.CostPicos, anomalous: sc.Anomaly, mark: sc.IncidentID + sc.IncidentStatus + strconv.Itoa(int(sc.IncidentUpdate))}
}

// scoresToWrite returns the scores of windows with a cost row, and of
// windows that carry an incident mark, that differ from what was last
// written for them.
func (s *Scorer) scoresToWrite(steps []stepped, published []pendingAlert) []schemas.Score {
	var out []schemas.Score
	done := map[windowKey]bool{}
	add := func(k windowKey, sc schemas.Score) {
		if m, ok := s.marks[k]; ok {
			sc.IncidentID, sc.IncidentStatus, sc.IncidentUpdate = m.IncidentID, m.IncidentStatus, m.IncidentUpdate
		}
		if done[k] {
			return
		}
		done[k] = true
		if w, ok := s.written[k]; ok && w == sigOf(sc) {
			return
		}
		out = append(out, sc)
	}
	for _, st := range steps {
		k := windowKey{st.key, st.v.WindowStart}
		if st.present || s.marks[k].IncidentID != "" {
			add(k, scoreOf(st.sk, st.cost, st.v))
		}
	}
	for _, p := range published {
		add(p.at, p.score)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].WindowStart.Before(out[j].WindowStart) })
	return out
}

// prune forgets what was written and marked for final windows.
func (s *Scorer) prune() {
	for k := range s.written {
		if !k.ws.After(s.committed) {
			delete(s.written, k)
		}
	}
	for k := range s.marks {
		if !k.ws.After(s.committed) {
			delete(s.marks, k)
		}
	}
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

// alertFor turns an incident transition into the alert subscribers see;
// cost is the window's exact cost.
func alertFor(tr Transition, sk seriesKey, cost schemas.Picos128, window time.Duration) schemas.Alert {
	usd := func(picos schemas.Picos128) string { return decimal.NewFromBigInt(picos.Big(), -12).String() }
	v, inc := tr.Verdict, tr.Incident
	return schemas.Alert{
		AlertID: alertID(inc.ID, inc.Status, inc.Update),
		Kind:    schemas.AlertCostAnomaly, Category: schemas.CategoryCost,
		WindowStart: v.WindowStart, WindowEnd: v.WindowStart.Add(window),
		Team: sk.team, Model: sk.model,
		CostUSD:     usd(cost),
		BaselineUSD: usd(v.BaselinePicos), StddevUSD: usd(v.ScalePicos),
		ZScore: v.Z, Observations: v.Observations,
		IncidentID: inc.ID, Status: inc.Status,
	}
}
