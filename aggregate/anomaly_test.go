package aggregate

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

type memScores struct {
	costs  []schemas.SeriesCost
	scores map[string]schemas.Score
	// history is every score ever written, as the table keeps every row
	// until a merge.
	history []schemas.Score
}

func (m *memScores) LatestWindow(context.Context) (time.Time, error) {
	var latest time.Time
	for _, c := range m.costs {
		if c.WindowStart.After(latest) {
			latest = c.WindowStart
		}
	}
	return latest, nil
}

func (m *memScores) LatestScored(context.Context) (time.Time, error) {
	var latest time.Time
	for _, s := range m.history {
		if s.WindowStart.After(latest) {
			latest = s.WindowStart
		}
	}
	return latest, nil
}

func (m *memScores) PublishedIncidents(_ context.Context, since time.Time) ([]schemas.Score, error) {
	var out []schemas.Score
	for _, s := range m.history {
		if s.IncidentID != "" && !s.WindowStart.Before(since) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (m *memScores) SeriesCosts(_ context.Context, from, to time.Time) ([]schemas.SeriesCost, error) {
	var out []schemas.SeriesCost
	for _, c := range m.costs {
		if !c.WindowStart.Before(from) && !c.WindowStart.After(to) {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].WindowStart.Before(out[j].WindowStart) })
	return out, nil
}

func (m *memScores) WriteScores(_ context.Context, scores []schemas.Score) error {
	if m.scores == nil {
		m.scores = map[string]schemas.Score{}
	}
	for _, s := range scores {
		m.scores[s.WindowStart.String()+s.Team+s.Model] = s
	}
	m.history = append(m.history, scores...)
	return nil
}

type memAlerts struct{ got []schemas.Alert }

func (m *memAlerts) Publish(_ context.Context, alerts []schemas.Alert) error {
	m.got = append(m.got, alerts...)
	return nil
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// shortConfig is the scorer's mechanics on short series.
func shortConfig() AnomalyConfig {
	cfg := DefaultAnomalyConfig()
	cfg.MinHistory, cfg.Threshold, cfg.ResolveWindows = 30, 4, 5
	cfg.SettleWindows, cfg.RescoreWindows = 0, 5
	return cfg
}

// sustained is a dense series of about $1 a window for n windows, factor×
// from window from for length windows.
func sustained(n, from, length int, factor int64) []schemas.SeriesCost {
	var out []schemas.SeriesCost
	for i := 0; i < n; i++ {
		cost := int64(1_000_000_000_000 + (i%3)*30_000_000_000)
		if i >= from && i < from+length {
			cost *= factor
		}
		out = append(out, schemas.SeriesCost{WindowStart: t0.Add(time.Duration(i) * time.Minute), Team: "t", Model: "m", CostPicos: schemas.PicosOf(cost)})
	}
	return out
}

// scoreEachWindow makes windows [from, to) of all visible one at a time,
// scoring after each, as the running pipeline does.
func scoreEachWindow(t *testing.T, s *Scorer, store *memScores, all []schemas.SeriesCost, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		store.costs = all[:i+1]
		if _, err := s.ScoreOnce(context.Background()); err != nil {
			t.Fatalf("pass at window %d: %v", i, err)
		}
	}
}

func statuses(alerts []schemas.Alert) string {
	var out []string
	for _, a := range alerts {
		out = append(out, a.Status)
	}
	return strings.Join(out, ",")
}

// A sustained anomaly, scored pass by pass with each pass scoring the last
// windows again, is one incident: one firing, one resolved, one id.
func TestScorerPublishesOneAlertPerIncident(t *testing.T) {
	all := sustained(80, 40, 15, 6)
	store, alerts := &memScores{}, &memAlerts{}
	s := NewScorer(shortConfig(), time.Minute, store, alerts, nil, quiet)
	scoreEachWindow(t, s, store, all, 0, len(all))
	if got := statuses(alerts.got); got != "firing,resolved" {
		t.Fatalf("alerts %s, want firing,resolved: %+v", got, alerts.got)
	}
	f, r := alerts.got[0], alerts.got[1]
	if f.IncidentID == "" || f.IncidentID != r.IncidentID || f.AlertID == r.AlertID {
		t.Errorf("ids: firing %s/%s, resolved %s/%s", f.IncidentID, f.AlertID, r.IncidentID, r.AlertID)
	}
	if at := t0.Add(40 * time.Minute); f.WindowStart.After(at.Add(time.Minute)) || f.CostUSD != "6" && f.CostUSD != "6.18" && f.CostUSD != "6.36" {
		t.Errorf("firing alert for window %s cost %s: %+v", f.WindowStart, f.CostUSD, f)
	}
	var marked int
	for _, sc := range store.scores {
		if sc.IncidentID != "" {
			marked++
		}
	}
	if marked != 2 {
		t.Errorf("%d score rows carry an incident mark, want 2", marked)
	}
}

// A restart in the middle of an incident rebuilds the state from the store:
// the incident is not fired again, and it still resolves.
func TestScorerRestartMidIncidentDoesNotFireAgain(t *testing.T) {
	all := sustained(80, 40, 15, 6)
	store, alerts := &memScores{}, &memAlerts{}
	s := NewScorer(shortConfig(), time.Minute, store, alerts, nil, quiet)
	scoreEachWindow(t, s, store, all, 0, 48)
	if got := statuses(alerts.got); got != "firing" {
		t.Fatalf("before the restart: alerts %s, want firing", got)
	}
	s = NewScorer(shortConfig(), time.Minute, store, alerts, nil, quiet)
	scoreEachWindow(t, s, store, all, 48, len(all))
	if got := statuses(alerts.got); got != "firing,resolved" || alerts.got[0].IncidentID != alerts.got[1].IncidentID {
		t.Fatalf("alerts %s, want firing,resolved of one incident: %+v", got, alerts.got)
	}
}

// Points that land late in a window already scored are seen: the window is
// scored again while it is among the last rescore_windows.
func TestScorerSeesLatePointsInScoredWindows(t *testing.T) {
	all := sustained(60, 0, 0, 1)
	store, alerts := &memScores{}, &memAlerts{}
	s := NewScorer(shortConfig(), time.Minute, store, alerts, nil, quiet)
	scoreEachWindow(t, s, store, all, 0, 50)
	// Windows 47..49 get a late partition each, worth 9× the series.
	store.costs = append([]schemas.SeriesCost(nil), all[:50]...)
	for i := 47; i < 50; i++ {
		store.costs[i].CostPicos = store.costs[i].CostPicos.Add(9_000_000_000_000)
	}
	if _, err := s.ScoreOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := statuses(alerts.got); got != "firing" {
		t.Fatalf("alerts %s after late points, want firing", got)
	}
}

// A 5× spike of ten minutes on a dense series fires within two windows,
// through the scorer.
func TestScorerFlagsAFiveFoldSpikeWithinTwoWindows(t *testing.T) {
	sim := simSeries{key: "support/gpt-4o-mini", reqPerWin: 200, medianPicos: 3e8, amplitude: 0.5, weekend: 1}
	rng := rand.New(rand.NewPCG(5, 5))
	start := simStart
	at := start.Add(32 * time.Hour)
	var all []schemas.SeriesCost
	for ws := start; ws.Before(at.Add(time.Hour)); ws = ws.Add(time.Minute) {
		c := sim.cost(rng, ws)
		if !ws.Before(at) && ws.Before(at.Add(10*time.Minute)) {
			c *= 5
		}
		all = append(all, schemas.SeriesCost{WindowStart: ws, Team: "support", Model: "gpt-4o-mini", CostPicos: schemas.PicosOf(int64(c))})
	}
	cfg := DefaultAnomalyConfig()
	cfg.SettleWindows = 0
	store, alerts := &memScores{}, &memAlerts{}
	s := NewScorer(cfg, time.Minute, store, alerts, nil, quiet)
	spike := int(at.Sub(start) / time.Minute)
	store.costs = all[:spike-30]
	if _, err := s.ScoreOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	scoreEachWindow(t, s, store, all, spike-30, len(all))
	if len(alerts.got) == 0 || alerts.got[0].Status != schemas.AlertFiring {
		t.Fatalf("no firing alert: %+v", alerts.got)
	}
	if f := alerts.got[0]; f.WindowStart.Before(at) || f.WindowStart.After(at.Add(time.Minute)) {
		t.Fatalf("spike at %s fired for window %s, want within 2 windows", at.Format("15:04"), f.WindowStart.Format("15:04"))
	}
	if got := statuses(alerts.got); got != "firing,resolved" {
		t.Errorf("alerts %s, want firing,resolved", got)
	}
}

func TestKafkaAlertsPublishes(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, schemas.TopicAlerts))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(schemas.TopicAlerts))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := schemas.Alert{AlertID: "cost_anomaly:1:t:m", Kind: schemas.AlertCostAnomaly, Team: "t", Model: "m", CostUSD: "1.5"}
	if err := (KafkaAlerts{Client: cl, Topic: schemas.TopicAlerts}).Publish(context.Background(), []schemas.Alert{want}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fs := cl.PollFetches(ctx)
	recs := fs.Records()
	if len(recs) != 1 || string(recs[0].Key) != want.AlertID {
		t.Fatalf("records = %v (errors %v)", recs, fs.Errors())
	}
	var got schemas.Alert
	if err := json.Unmarshal(recs[0].Value, &got); err != nil || got.CostUSD != "1.5" || got.Team != "t" {
		t.Fatalf("alert = %+v, %v", got, err)
	}
}

// The first pass over stored history scores every window of it, not only
// the last rescore_windows.
func TestScorerScoresHistoryOnFirstStart(t *testing.T) {
	store := &memScores{costs: sustained(60, 0, 0, 1)}
	s := NewScorer(shortConfig(), time.Minute, store, nil, nil, quiet)
	if _, err := s.ScoreOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(store.scores) != 60 {
		t.Fatalf("%d windows scored, want 60", len(store.scores))
	}
}

// An incident that grows markedly after it fired is published once more as
// updated, with the same incident id and the next update number, then
// resolved: firing, updated, resolved.
func TestScorerPublishesAnUpdateWhenTheIncidentGrows(t *testing.T) {
	all := sustained(90, 40, 25, 3)
	for i := 50; i < 65; i++ {
		all[i].CostPicos = schemas.PicosOf(12_000_000_000_000) // 12×: the excess more than doubles
	}
	store, alerts := &memScores{}, &memAlerts{}
	s := NewScorer(shortConfig(), time.Minute, store, alerts, nil, quiet)
	scoreEachWindow(t, s, store, all, 0, len(all))
	if got := statuses(alerts.got); got != "firing,updated,resolved" {
		t.Fatalf("alerts %s, want firing,updated,resolved: %+v", got, alerts.got)
	}
	for i, a := range alerts.got {
		if a.IncidentID != alerts.got[0].IncidentID || updateOf(a.AlertID) != i {
			t.Errorf("alert %d: incident %s, id %s; want incident %s, update %d", i, a.IncidentID, a.AlertID, alerts.got[0].IncidentID, i)
		}
	}
	f, u := alerts.got[0], alerts.got[1]
	fc, _ := strconv.ParseFloat(f.CostUSD, 64)
	uc, _ := strconv.ParseFloat(u.CostUSD, 64)
	if !u.WindowStart.After(f.WindowStart) || uc < 3*fc {
		t.Errorf("update for window %s cost %s after firing for %s cost %s", u.WindowStart, u.CostUSD, f.WindowStart, f.CostUSD)
	}
}

// Points that land late can take an anomaly away: a drop fired while some
// partitions of the newest windows had not landed. The scorer then
// publishes the incident's resolution (subscribers hear the end of every
// incident they heard the start of), and nothing more once it is final.
func TestScorerResolvesAnIncidentThatLateDataRemoved(t *testing.T) {
	cfg := shortConfig()
	cfg.Direction = DirectionBoth
	all := sustained(70, 0, 0, 1)
	store, alerts := &memScores{}, &memAlerts{}
	s := NewScorer(cfg, time.Minute, store, alerts, nil, quiet)
	scoreEachWindow(t, s, store, all, 0, 45)
	// Windows 45..48 arrive with one partition in ten.
	store.costs = append([]schemas.SeriesCost(nil), all[:49]...)
	for i := 45; i < 49; i++ {
		store.costs[i].CostPicos = schemas.PicosOf(100_000_000_000)
	}
	if _, err := s.ScoreOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := statuses(alerts.got); got != "firing" {
		t.Fatalf("alerts %s with partitions missing, want firing: %+v", got, alerts.got)
	}
	// The rest lands: the windows are as usual after all.
	store.costs = all[:49]
	if _, err := s.ScoreOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := statuses(alerts.got); got != "firing,resolved" || alerts.got[1].IncidentID != alerts.got[0].IncidentID {
		t.Fatalf("alerts %s after the late points, want firing,resolved of one incident: %+v", got, alerts.got)
	}
	scoreEachWindow(t, s, store, all, 49, len(all))
	if got := statuses(alerts.got); got != "firing,resolved" {
		t.Fatalf("alerts %s once the windows are final, want firing,resolved only: %+v", got, alerts.got)
	}
	var resolvedMark int
	for _, sc := range store.scores {
		if sc.IncidentStatus == StatusResolved && sc.IncidentID == alerts.got[0].IncidentID {
			resolvedMark++
		}
	}
	if resolvedMark != 1 {
		t.Errorf("%d score rows carry the resolution's mark, want 1 (so a restart does not resolve it again)", resolvedMark)
	}
}
