package aggregate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

// TestStageConfirmsSealedDuplicates runs the stage on real Kafka and
// ClickHouse over two hours of event time, so that the first events are
// sealed into a compact bucket, then resends the first event: the stage
// must confirm it with ClickHouse and drop it. A restarted stage, which
// rebuilds its dedup state from ClickHouse, must drop another copy.
func TestStageConfirmsSealedDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Kafka and ClickHouse")
	}
	brokers := testenv.Kafka(t)
	addr, db := testenv.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	topic := fmt.Sprintf("aivis-test-dedup-%d", time.Now().UnixNano())
	createTopics(t, brokers, 1, topic, schemas.TopicDeadLetter)

	store := migratedStore(t, ctx, addr, db)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	base := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	record := func(i int) *kgo.Record {
		ev := schemas.Enriched{
			Event: schemas.Event{SchemaVersion: "1", EventID: fmt.Sprintf("d-%04d", i), Time: base.Add(time.Duration(i) * 30 * time.Second),
				Kind: schemas.KindLLMRequest, Source: "test", Provider: "openai", Model: "m", Status: schemas.StatusOK,
				Usage: &schemas.Usage{InputTokens: schemas.Int64(10), OutputTokens: schemas.Int64(1)}},
			Owner:     schemas.Owner{Team: "t", Project: "p"},
			CostPicos: 1_000_000,
		}
		b, _ := json.Marshal(ev)
		return &kgo.Record{Key: []byte(ev.EventID), Value: b}
	}
	const n = 240 // two hours, one event every 30 s
	produce := func(recs ...*kgo.Record) {
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	cfg := aggregate.DefaultConfig()
	cfg.Topic, cfg.Group = topic, topic
	cfg.SessionTimeout, cfg.IdleTimeout, cfg.FlushInterval = 6*time.Second, time.Second, 200*time.Millisecond
	cfg.PollRecords = 20 // many polls: the first events are sealed before the last arrive
	run := func(phase string, wantDecided int, send func()) (duplicates, suspects float64) {
		reg := prometheus.NewRegistry()
		st, err := aggregate.NewStage(cfg, bus.Dialer{Brokers: brokers, ClientID: "test"}, store, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		sctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- st.Run(sctx) }()
		send()
		// outcomes reads the counters: the events decided so far, the
		// duplicates among them and the suspects confirmed.
		outcomes := func() (decided, duplicates, suspects float64) {
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					switch mf.GetName() {
					case "aivis_aggregate_dedup_suspects_total":
						suspects = m.GetCounter().GetValue()
					case "aivis_aggregate_events_total":
						decided += m.GetCounter().GetValue()
						if m.GetLabel()[0].GetValue() == "duplicate" {
							duplicates = m.GetCounter().GetValue()
						}
					}
				}
			}
			return decided, duplicates, suspects
		}
		for {
			decided, dup, sus := outcomes()
			if decided >= float64(wantDecided) {
				duplicates, suspects = dup, sus
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: %v of %d records decided", phase, decided, wantDecided)
			}
			time.Sleep(100 * time.Millisecond)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatalf("%s: %v", phase, err)
		}
		return duplicates, suspects
	}

	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		recs = append(recs, record(i))
	}
	dup, sus := run("first run", n+1, func() {
		produce(recs...)
		// The copy goes once the stage has been through the originals.
		for requestsIn(t, ctx, store) < n {
			if ctx.Err() != nil {
				t.Fatal("the originals were not written in time")
			}
			time.Sleep(100 * time.Millisecond)
		}
		produce(record(0))
	})
	if dup != 1 || sus < 1 {
		t.Fatalf("first run: %v duplicates, %v suspects confirmed; want the copy found in a sealed bucket and dropped", dup, sus)
	}
	if got := requestsIn(t, ctx, store); got != n {
		t.Fatalf("first run: %d requests counted, want %d", got, n)
	}
	// A new replica rebuilds the state from ClickHouse; only the new copy
	// is consumed (the group committed the rest).
	dup, sus = run("after restart", 1, func() { produce(record(1)) })
	if dup != 1 || sus < 1 {
		t.Fatalf("after restart: %v duplicates, %v suspects confirmed; want the copy found in a rebuilt bucket and dropped", dup, sus)
	}
	if got := requestsIn(t, ctx, store); got != n {
		t.Fatalf("after restart: %d requests counted, want %d", got, n)
	}
}
