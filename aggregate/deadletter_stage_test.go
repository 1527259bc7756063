package aggregate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

// TestStageDeadLetterTooLargeForItsTopic: with a dead-letter topic whose
// max.message.bytes is under a dead letter's size, the stage used to retry
// the refused write for ever, holding its partitions back. A dead letter
// refused for its size, alone, is now written without the original's bytes,
// and the events after it are counted. Kafka is kfake (the limit is set on
// its own topic); the sink is the real ClickHouse.
func TestStageDeadLetterTooLargeForItsTopic(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr, db := testenv.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic = "aivis-test-dl-limit"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic, schemas.TopicDeadLetter))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	limit := "4000"
	rs, err := kadm.NewClient(cl).AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: &limit}}, schemas.TopicDeadLetter)
	if err == nil {
		_, err = rs.On(schemas.TopicDeadLetter, nil)
	}
	if err != nil {
		t.Fatal(err)
	}

	store := migratedStore(t, ctx, addr, db)
	base := time.Now().UTC().Add(-10 * time.Minute)
	rng := rand.New(rand.NewPCG(8, 9))
	var recs []*kgo.Record
	const valid, bad = 40, 4
	for i := range valid {
		if i%(valid/bad) == 3 {
			// Random letters that do not decode: their dead letter is
			// about 8 KiB, and compresses to more than the limit.
			junk := make([]byte, 6000)
			for j := range junk {
				junk[j] = byte('a' + rng.IntN(26))
			}
			recs = append(recs, &kgo.Record{Key: []byte("k"), Value: junk})
		}
		ev := schemas.Enriched{
			Event: schemas.Event{SchemaVersion: "1", EventID: fmt.Sprintf("dl-%03d", i), Time: base.Add(time.Duration(i) * time.Second),
				Kind: schemas.KindLLMRequest, Source: "test", Provider: "openai", Model: "m", Status: schemas.StatusOK,
				Usage: &schemas.Usage{InputTokens: schemas.Int64(10), OutputTokens: schemas.Int64(1)}},
			Owner:     schemas.Owner{Team: "t", Project: "p"},
			CostPicos: 1_000_000,
		}
		b, _ := json.Marshal(ev)
		recs = append(recs, &kgo.Record{Key: []byte("k"), Value: b})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cfg := aggregate.DefaultConfig()
	cfg.Topic, cfg.Group = topic, topic
	cfg.SessionTimeout, cfg.IdleTimeout, cfg.FlushInterval = 6*time.Second, time.Second, 200*time.Millisecond
	reg := prometheus.NewRegistry()
	st, err := aggregate.NewStage(cfg, bus.Dialer{Brokers: brokers, ClientID: "test"}, store, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- st.Run(sctx) }()
	for requestsIn(t, ctx, store) < valid {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d events counted before timing out", requestsIn(t, ctx, store), valid)
		}
		time.Sleep(200 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	out, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(schemas.TopicDeadLetter), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var dead []schemas.DeadLetter
	for len(dead) < bad && ctx.Err() == nil {
		out.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var dl schemas.DeadLetter
			if err := json.Unmarshal(r.Value, &dl); err != nil {
				t.Fatal(err)
			}
			dead = append(dead, dl)
		})
	}
	if len(dead) != bad {
		t.Fatalf("%d dead letters, want %d", len(dead), bad)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "aivis_deadletter_total" {
			for _, m := range mf.GetMetric() {
				counted += m.GetCounter().GetValue()
			}
		}
	}
	if counted != bad {
		t.Errorf("aivis_deadletter_total counted %v dead letters, want %d", counted, bad)
	}
	for _, dl := range dead {
		if dl.Reason != schemas.ReasonInvalidSchema || dl.Topic != topic || dl.OriginalBytes != 6000 || len(dl.Original) != 0 ||
			!dl.OriginalTruncated || !strings.Contains(dl.Detail, "left out") {
			t.Errorf("dead letter %+v, want one of invalid_schema without its 6000 original bytes", dl)
		}
	}
}
