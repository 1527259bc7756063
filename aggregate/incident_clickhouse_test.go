package aggregate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// TestScorerIncidentOnTheTopic runs the scorer pass by pass over windows
// written to ClickHouse as the pipeline writes them, with a restart in the
// middle of a sustained anomaly caused by one API key: the alerts topic
// gets exactly one firing and one resolved alert, of one incident, and the
// firing one names that key as the top contributor.
func TestScorerIncidentOnTheTopic(t *testing.T) {
	addr, db := testenv.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := chsink.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	store, err := chsink.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, schemas.TopicAlerts))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(schemas.TopicAlerts))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sink := aggregate.KafkaAlerts{Client: cl, Topic: schemas.TopicAlerts}

	acfg := aggregate.DefaultAnomalyConfig()
	acfg.MinHistory, acfg.Threshold, acfg.ResolveWindows = 30, 4, 5
	acfg.SettleWindows, acfg.RescoreWindows = 0, 5
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	write := runawayWindows(ctx, t, store)
	pass := func(s *aggregate.Scorer, from, to int) {
		for i := from; i < to; i++ {
			write(i)
			if _, err := s.ScoreOnce(ctx); err != nil {
				t.Fatalf("pass at window %d: %v", i, err)
			}
		}
	}
	pass(aggregate.NewScorer(acfg, time.Minute, store, sink, nil, quiet), 0, 47)
	// Restart mid-incident: a fresh scorer rebuilds from the store.
	pass(aggregate.NewScorer(acfg, time.Minute, store, sink, nil, quiet), 47, 75)

	var got []schemas.Alert
	for len(got) < 3 {
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		if len(fs.Records()) == 0 {
			break
		}
		for _, r := range fs.Records() {
			var a schemas.Alert
			if err := json.Unmarshal(r.Value, &a); err != nil {
				t.Fatal(err)
			}
			got = append(got, a)
		}
	}
	var st []string
	for _, a := range got {
		st = append(st, a.Status)
	}
	if strings.Join(st, ",") != "firing,resolved" {
		t.Fatalf("alerts on the topic: %v, want firing,resolved: %+v", st, got)
	}
	f, r := got[0], got[1]
	if f.IncidentID != r.IncidentID || f.AlertID == r.AlertID || f.Team != "search" || f.Model != "gpt-4o" {
		t.Errorf("firing %+v\nresolved %+v", f, r)
	}
	if len(f.Contributors) == 0 || f.Contributors[0].Dimension != "api_key_id" || f.Contributors[0].Key != "k-runaway" {
		t.Errorf("firing contributors %+v, want api_key_id k-runaway first", f.Contributors)
	}
	t.Logf("firing: %s window %s cost %s baseline %s contributors %+v", f.AlertID, f.WindowStart.Format("15:04"), f.CostUSD, f.BaselineUSD, f.Contributors)
	t.Logf("resolved: %s window %s", r.AlertID, r.WindowStart.Format("15:04"))
}

// runawayWindows returns a writer of window i of one (search, gpt-4o)
// series, about $1 a window from one steady key, to ClickHouse as the
// pipeline writes it: events and the window row. In windows 40..54 a
// runaway key adds $5 a window.
func runawayWindows(ctx context.Context, t *testing.T, store *chsink.Store) func(i int) {
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	var offset int64
	write := func(i int) {
		ws := start.Add(time.Duration(i) * time.Minute)
		ev := func(key string, n int, costPicos int64) schemas.StoredEvent {
			offset++
			e := &schemas.Enriched{Event: *testenv.LLMEvent("openai", "gpt-4o-2024-08-06", testenv.Usage(1000, 0, 0, 100, 0))}
			e.EventID, e.Time, e.APIKeyID = fmt.Sprintf("ev-%d-%s-%d", i, key, n), ws.Add(time.Duration(n)*time.Second), key
			e.CanonicalModel = "gpt-4o"
			e.Owner = schemas.Owner{Team: "search", Project: "ranker"}
			e.CostPicos, e.CostSource = costPicos, schemas.CostSourceCatalog
			return schemas.StoredEvent{Event: e, Offset: offset}
		}
		events := []schemas.StoredEvent{ev("k-steady", 0, 500_000_000_000), ev("k-steady", 1, 500_000_000_000+int64(i%3)*30_000_000_000)}
		if i >= 40 && i < 55 {
			events = append(events, ev("k-runaway", 2, 5_000_000_000_000))
		}
		var cost schemas.Picos128
		for _, e := range events {
			cost = cost.Add(e.Event.CostPicos)
		}
		row := schemas.WindowRow{WindowStart: ws, WindowSeconds: 60, Provider: "openai", Model: "gpt-4o", Team: "search", Project: "ranker",
			ThroughOffset: offset, Requests: uint64(len(events)), CostPicos: cost, LatencyHist: make([]uint64, schemas.LatencyBuckets)}
		if err := store.Write(ctx, events, []schemas.WindowRow{row}); err != nil {
			t.Fatalf("writing window %d: %v", i, err)
		}
	}
	return write
}
