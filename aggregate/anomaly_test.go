package aggregate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

type memScores struct {
	costs  []schemas.SeriesCost
	scores map[string]schemas.Score
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

func (m *memScores) LatestScores(context.Context) ([]schemas.Score, error) {
	last := map[seriesKey]schemas.Score{}
	for _, s := range m.scores {
		k := seriesKey{s.Team, s.Model}
		if s.WindowStart.After(last[k].WindowStart) {
			last[k] = s
		}
	}
	out := make([]schemas.Score, 0, len(last))
	for _, s := range last {
		out = append(out, s)
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
	return out, nil
}

func (m *memScores) WriteScores(_ context.Context, scores []schemas.Score) error {
	for _, s := range scores {
		m.scores[s.WindowStart.String()+s.Team+s.Model] = s
	}
	return nil
}

func TestScorerFlagsASpikeAfterMinimumHistory(t *testing.T) {
	cfg := DefaultAnomalyConfig()
	cfg.MinHistory, cfg.Threshold = 10, 3 // the scorer's mechanics, on short series
	cfg.SettleWindows = 0
	store := &memScores{scores: map[string]schemas.Score{}}
	for i := 0; i < 30; i++ {
		cost := int64(1_000_000_000_000 + (i%3)*50_000_000_000) // about $1 a window
		if i == 5 || i == 25 {
			cost = 20_000_000_000_000 // $20
		}
		store.costs = append(store.costs, schemas.SeriesCost{WindowStart: t0.Add(time.Duration(i) * time.Minute), Team: "t", Model: "m", CostPicos: schemas.PicosOf(cost)})
	}
	s := NewScorer(cfg, time.Minute, store, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// Score in two passes to check that state resumes from stored scores.
	rest := store.costs[15:]
	store.costs = store.costs[:15]
	if n, err := s.ScoreOnce(context.Background()); err != nil || n != 15 {
		t.Fatalf("first pass scored %d, %v", n, err)
	}
	store.costs = append(store.costs, rest...)
	if n, err := s.ScoreOnce(context.Background()); err != nil || n != 15 {
		t.Fatalf("second pass scored %d, %v", n, err)
	}
	for key, sc := range store.scores {
		i := int(sc.WindowStart.Sub(t0) / time.Minute)
		switch {
		case i == 5 && sc.Anomaly:
			t.Errorf("window 5 flagged before the minimum history: %+v", sc)
		case i == 25 && !sc.Anomaly:
			t.Errorf("the $20 spike in window 25 was not flagged: z=%.1f", sc.Z)
		case i != 25 && sc.Anomaly:
			t.Errorf("%s flagged: z=%.1f", key, sc.Z)
		}
	}
	if len(store.scores) != 30 {
		t.Fatalf("%d scores, want 30", len(store.scores))
	}
}

func TestScorerRespectsTheImpactFloor(t *testing.T) {
	cfg := DefaultAnomalyConfig()
	cfg.MinHistory, cfg.Threshold = 10, 3 // the scorer's mechanics, on short series
	cfg.SettleWindows = 0
	store := &memScores{scores: map[string]schemas.Score{}}
	for i := 0; i < 20; i++ {
		cost := int64(1_000_000) // a millionth of a dollar
		if i == 15 {
			cost = 100_000_000 // 100× but only $0.0001
		}
		store.costs = append(store.costs, schemas.SeriesCost{WindowStart: t0.Add(time.Duration(i) * time.Minute), Team: "t", Model: "m", CostPicos: schemas.PicosOf(cost)})
	}
	s := NewScorer(cfg, time.Minute, store, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := s.ScoreOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, sc := range store.scores {
		if sc.Anomaly {
			t.Fatalf("a $0.0001 rise was flagged: %+v", sc)
		}
	}
}

type memAlerts struct{ got []schemas.Alert }

func (m *memAlerts) Publish(_ context.Context, alerts []schemas.Alert) error {
	m.got = append(m.got, alerts...)
	return nil
}

func TestScorerPublishesAnomalies(t *testing.T) {
	cfg := DefaultAnomalyConfig()
	cfg.MinHistory, cfg.Threshold = 10, 3 // the scorer's mechanics, on short series
	cfg.SettleWindows = 0
	store := &memScores{scores: map[string]schemas.Score{}}
	for i := 0; i < 20; i++ {
		cost := int64(1_000_000_000_000 + (i%2)*10_000_000_000)
		if i == 15 {
			cost = 20_000_000_000_000
		}
		store.costs = append(store.costs, schemas.SeriesCost{WindowStart: t0.Add(time.Duration(i) * time.Minute), Team: "t", Model: "m", CostPicos: schemas.PicosOf(cost)})
	}
	alerts := &memAlerts{}
	s := NewScorer(cfg, time.Minute, store, alerts, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := s.ScoreOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(alerts.got) != 1 {
		t.Fatalf("%d alerts, want 1: %+v", len(alerts.got), alerts.got)
	}
	a := alerts.got[0]
	ws := t0.Add(15 * time.Minute)
	if a.AlertID != fmt.Sprintf("cost_anomaly:%d:t:m", ws.Unix()) || a.CostUSD != "20" || !a.WindowEnd.Equal(ws.Add(time.Minute)) || a.ZScore < cfg.Threshold {
		t.Fatalf("alert = %+v", a)
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
