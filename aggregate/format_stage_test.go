package aggregate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

// TestStageReadsBothForms: one topic holding JSON records and protobuf
// ones (enrich.output_format changed while records were in flight). Each
// is read in the form its content-type header names; an event that came in
// both forms is counted once; a record that does not decode in the form its
// header names is dead-lettered, whatever it would decode as otherwise.
// Kafka is kfake; the sink is the real ClickHouse.
func TestStageReadsBothForms(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr, db := testenv.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic = "aivis-test-forms"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic, schemas.TopicDeadLetter))
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
	store := migratedStore(t, ctx, addr, db)

	protobuf := []kgo.RecordHeader{{Key: schemas.HeaderContentType, Value: []byte(schemas.ContentTypeProtobuf)}}
	base := time.Now().UTC().Add(-10 * time.Minute)
	var recs []*kgo.Record
	const n = 60
	var wantPicos int64
	for i := range n {
		ev := schemas.Enriched{
			Event: schemas.Event{SchemaVersion: "1", EventID: fmt.Sprintf("form-%03d", i), Time: base.Add(time.Duration(i) * time.Second),
				Kind: schemas.KindLLMRequest, Source: "test", Provider: "openai", Model: "m", Status: schemas.StatusOK,
				Labels: map[string]string{"team": "t", "env": "prod"},
				Usage:  &schemas.Usage{InputTokens: schemas.Int64(10 + int64(i)), OutputTokens: schemas.Int64(1)}},
			Owner:     schemas.Owner{Team: "t", Project: "p"},
			CostPicos: 1_000_000 + int64(i),
		}
		wantPicos += ev.CostPicos
		js, _ := json.Marshal(ev)
		pb := ev.AppendProto(nil)
		key := []byte(ev.EventID)
		switch i % 3 {
		case 0:
			recs = append(recs, &kgo.Record{Key: key, Value: js})
		case 1:
			recs = append(recs, &kgo.Record{Key: key, Value: pb, Headers: protobuf})
		case 2:
			// Both forms of one event: enrich restarted with the other
			// format before its offsets were committed.
			recs = append(recs, &kgo.Record{Key: key, Value: js}, &kgo.Record{Key: key, Value: pb, Headers: protobuf})
		}
		if i == 10 {
			// The protobuf form without its header, and JSON under the
			// protobuf header.
			recs = append(recs, &kgo.Record{Key: key, Value: pb}, &kgo.Record{Key: key, Value: js, Headers: protobuf})
		}
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
	for requestsIn(t, ctx, store) < n {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d events counted before timing out", requestsIn(t, ctx, store), n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Late duplicates would arrive in the same polls; give a flush more.
	time.Sleep(time.Second)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := requestsIn(t, ctx, store); got != n {
		t.Errorf("%d requests counted, want %d", got, n)
	}
	// n/3 JSON, n/3 protobuf, n/3 both, and the two mislabelled records.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	forms := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "aivis_aggregate_records_total" {
			for _, m := range mf.GetMetric() {
				forms[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if want := float64(2*n/3 + 1); forms["json"] != want || forms["protobuf"] != want {
		t.Errorf("aivis_aggregate_records_total %v, want %v of each form", forms, want)
	}
	var cost string
	if err := store.QueryRow(ctx, "SELECT toString(sum(cost_usd)) FROM cost_by_window").Scan(&cost); err != nil {
		t.Fatal(err)
	}
	if got, ok := new(big.Rat).SetString(cost); !ok || got.Cmp(big.NewRat(wantPicos, 1e12)) != 0 {
		t.Errorf("cost %s USD, want %d picos", cost, wantPicos)
	}

	out, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(schemas.TopicDeadLetter), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var dead []schemas.DeadLetter
	for len(dead) < 2 && ctx.Err() == nil {
		out.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var dl schemas.DeadLetter
			if err := json.Unmarshal(r.Value, &dl); err != nil {
				t.Fatal(err)
			}
			dead = append(dead, dl)
		})
	}
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dead))
	}
	for _, dl := range dead {
		if dl.Reason != schemas.ReasonInvalidSchema || !strings.Contains(dl.Detail, "decoding enriched event") {
			t.Errorf("dead letter %s: %s, want invalid_schema for a record that does not decode", dl.Reason, dl.Detail)
		}
	}
}
