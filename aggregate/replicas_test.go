package aggregate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// TestReplicasSpreadHotKeyAndMatchOneReplica runs three aggregator replicas
// on a stream where one model carries 80 % of the events, checks that each
// replica processes a fair share, and that the windows equal those of a
// single replica exactly.
func TestReplicasSpreadHotKeyAndMatchOneReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Kafka and ClickHouse")
	}
	brokers := testenv.Kafka(t)
	addr, dbThree := testenv.ClickHouseDatabase(t)
	_, dbOne := testenv.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	topic := fmt.Sprintf("aivis-test-enriched-%d", time.Now().UnixNano())
	createTopics(t, brokers, 6, topic, schemas.TopicDeadLetter)
	const n = 12_000

	cfg := aggregate.DefaultConfig()
	cfg.SessionTimeout = 6 * time.Second
	cfg.IdleTimeout = 2 * time.Second
	cfg.FlushInterval = 200 * time.Millisecond
	cfg.Group = topic + "-three"

	// Produce once the three replicas share the partitions, so that the
	// counts measure the spread rather than who joined first.
	three := runReplicas(t, ctx, cfg, brokers, topic, addr, dbThree, 3, n, func() {
		produceEnriched(t, ctx, brokers, topic, n)
	})
	var total int64
	for _, c := range three {
		total += c
	}
	mean := float64(total) / 3
	for i, c := range three {
		if r := float64(c) / mean; r < 0.6 || r > 1.4 {
			t.Errorf("replica %d processed %d records, %.2f× the mean %.0f (want 0.6–1.4×)", i, c, r, mean)
		}
	}
	t.Logf("records per replica: %v", three)

	cfg.Group = topic + "-one"
	runReplicas(t, ctx, cfg, brokers, topic, addr, dbOne, 1, n, nil)

	a, b := windows(t, ctx, addr, dbThree), windows(t, ctx, addr, dbOne)
	if len(a) == 0 || !reflect.DeepEqual(a, b) {
		t.Fatalf("3 replicas and 1 replica disagree:\n3: %d rows\n1: %d rows", len(a), len(b))
	}
	var requests uint64
	for _, r := range a {
		requests += r.Requests
	}
	if requests != n {
		t.Fatalf("windows count %d requests, want %d", requests, n)
	}
}

func createTopics(t *testing.T, brokers []string, partitions int32, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopics(context.Background(), partitions, 1, nil, topics...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp {
		if r.Err != nil && r.Topic != schemas.TopicDeadLetter {
			t.Fatalf("creating %s: %v", r.Topic, r.Err)
		}
	}
}

// produceEnriched writes n enriched events keyed by event_id; 80 % use one
// model, and the times cover a few minutes that closed in the past.
func produceEnriched(t *testing.T, ctx context.Context, brokers []string, topic string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Now().UTC().Truncate(time.Minute).Add(-15 * time.Minute)
	recs := make([]*kgo.Record, 0, n)
	for i := 0; i < n; i++ {
		model := "hot-model"
		if rng.IntN(10) >= 8 {
			model = fmt.Sprintf("cold-%d", rng.IntN(4))
		}
		lat := int64(50 + rng.IntN(4000))
		ev := schemas.Enriched{
			Event: schemas.Event{
				SchemaVersion: "1", EventID: fmt.Sprintf("r-%06d", i), Time: base.Add(time.Duration(i) * 40 * time.Millisecond),
				Kind: schemas.KindLLMRequest, Source: "test", Provider: "openai", Model: model, Status: schemas.StatusOK, LatencyMs: &lat,
				Usage: &schemas.Usage{InputTokens: schemas.Int64(int64(rng.IntN(9000))), OutputTokens: schemas.Int64(int64(rng.IntN(900)))},
			},
			Owner:     schemas.Owner{Team: fmt.Sprintf("team-%d", rng.IntN(3)), Project: "p"},
			CostPicos: int64(rng.IntN(50_000_000)),
		}
		b, _ := json.Marshal(ev)
		recs = append(recs, &kgo.Record{Key: []byte(ev.EventID), Value: b})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// runReplicas runs k replicas of one group until every record is consumed
// and written, then stops them; it returns each replica's record count.
func runReplicas(t *testing.T, ctx context.Context, cfg aggregate.Config, brokers []string, topic, addr, db string, k, n int, produce func()) []int64 {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := migratedStore(t, ctx, addr, db)
	stages := make([]*aggregate.Stage, k)
	done := make([]chan error, k)
	cancels := make([]context.CancelFunc, k)
	for i := range stages {
		cfg.Topic = topic
		st, err := aggregate.NewStage(cfg, bus.Dialer{Brokers: brokers, ClientID: "test"}, store, nil, log)
		if err != nil {
			t.Fatal(err)
		}
		stages[i] = st
		sctx, c := context.WithCancel(ctx)
		cancels[i] = c
		done[i] = make(chan error, 1)
		go func() { done[i] <- st.Run(sctx) }()
	}
	deadline := time.Now().Add(3 * time.Minute)
	if produce != nil {
		for balanced := false; !balanced; {
			balanced = true
			for _, st := range stages {
				if len(st.Assigned()) != 6/k {
					balanced = false
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("replicas did not share the partitions evenly in time")
			}
			time.Sleep(100 * time.Millisecond)
		}
		produce()
	}
	for {
		var sum int64
		for _, st := range stages {
			sum += st.Processed()
		}
		if sum >= int64(n) && requestsIn(t, ctx, store) >= uint64(n) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d replicas: processed %d of %d records before the deadline", k, sum, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	counts := make([]int64, k)
	for i, st := range stages {
		cancels[i]()
		if err := <-done[i]; err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
		counts[i] = st.Processed()
	}
	return counts
}

// migratedStore opens db on the ClickHouse at addr, migrated, closed when
// the test ends.
func migratedStore(t *testing.T, ctx context.Context, addr, db string) *chsink.Store {
	t.Helper()
	cfg := chsink.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	store, err := chsink.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return store
}

func requestsIn(t *testing.T, ctx context.Context, store *chsink.Store) uint64 {
	rows, err := store.Query(ctx, "SELECT toUInt64(sum(requests)) FROM cost_by_window")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var v uint64
	for rows.Next() {
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

type windowRow struct {
	Start                         time.Time
	Model, Team                   string
	Requests                      uint64
	Input, Output                 int64
	Cost                          string
	LatencyP50, LatencyP95, AvgMs float64
}

func windows(t *testing.T, ctx context.Context, addr, db string) []windowRow {
	t.Helper()
	chcfg := chsink.DefaultConfig()
	chcfg.Addr, chcfg.Database = addr, db
	store, err := chsink.Open(ctx, chcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rows, err := store.Query(ctx, `SELECT window_start, model, team, requests, input_tokens, output_tokens, toString(cost_usd),
    latency_p50_ms, latency_p95_ms, latency_avg_ms
FROM cost_by_window ORDER BY window_start, model, team`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []windowRow
	for rows.Next() {
		var r windowRow
		if err := rows.Scan(&r.Start, &r.Model, &r.Team, &r.Requests, &r.Input, &r.Output, &r.Cost, &r.LatencyP50, &r.LatencyP95, &r.AvgMs); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// lagPartitions returns the partitions reg exports aivis_aggregate_consumer_lag
// for, with their values.
func lagPartitions(t *testing.T, reg *prometheus.Registry) map[int32]float64 {
	t.Helper()
	out := map[int32]float64{}
	for labels, v := range testenv.Series(t, reg, "aivis_aggregate_consumer_lag") {
		p, err := strconv.Atoi(strings.TrimPrefix(labels, "partition="))
		if err != nil {
			t.Fatalf("lag series %q", labels)
		}
		out[int32(p)] = v
	}
	return out
}

// TestReplicaLagFollowsAssignment: a replica exports lag only for the
// partitions it holds. One that gave partitions to a new replica must not
// keep reporting their last lag, which alert rules summing lag per
// instance would read as a replica falling behind for ever.
func TestReplicaLagFollowsAssignment(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Kafka and ClickHouse")
	}
	brokers := testenv.Kafka(t)
	addr, db := testenv.ClickHouseDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	topic := fmt.Sprintf("aivis-test-enriched-lag-%d", time.Now().UnixNano())
	createTopics(t, brokers, 6, topic, schemas.TopicDeadLetter)

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := migratedStore(t, ctx, addr, db)
	cfg := aggregate.DefaultConfig()
	cfg.Topic, cfg.Group = topic, topic
	cfg.SessionTimeout = 6 * time.Second
	cfg.IdleTimeout = 2 * time.Second
	cfg.FlushInterval = 200 * time.Millisecond
	type replica struct {
		st   *aggregate.Stage
		reg  *prometheus.Registry
		stop context.CancelFunc
		done chan error
	}
	start := func() *replica {
		r := &replica{reg: prometheus.NewRegistry(), done: make(chan error, 1)}
		st, err := aggregate.NewStage(cfg, bus.Dialer{Brokers: brokers, ClientID: "test"}, store, r.reg, log)
		if err != nil {
			t.Fatal(err)
		}
		r.st = st
		sctx, stop := context.WithCancel(ctx)
		r.stop = stop
		go func() { r.done <- st.Run(sctx) }()
		return r
	}
	// waitFor polls until cond holds, or fails with what.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// exportsHeld: the replica's lag series are exactly its partitions,
	// each at zero once everything produced is processed.
	exportsHeld := func(r *replica) bool {
		lag, held := lagPartitions(t, r.reg), r.st.Assigned()
		if len(lag) != len(held) {
			return false
		}
		for _, p := range held {
			if v, ok := lag[p]; !ok || v != 0 {
				return false
			}
		}
		return true
	}

	a := start()
	waitFor("one replica holds all 6 partitions", func() bool { return len(a.st.Assigned()) == 6 })
	produceEnriched(t, ctx, brokers, topic, 3000)
	waitFor("the first replica exports lag 0 for its 6 partitions", func() bool { return a.st.Processed() == 3000 && exportsHeld(a) })

	b := start()
	waitFor("two replicas share the partitions", func() bool { return len(a.st.Assigned()) == 3 && len(b.st.Assigned()) == 3 })
	produceEnriched(t, ctx, brokers, topic, 3000) // same ids: counted once, but read by both
	waitFor("each replica exports lag for its own 3 partitions only", func() bool {
		return a.st.Processed()+b.st.Processed() >= 6000 && exportsHeld(a) && exportsHeld(b)
	})

	b.stop()
	if err := <-b.done; err != nil {
		t.Fatalf("second replica: %v", err)
	}
	if lag := lagPartitions(t, b.reg); len(lag) != 0 {
		t.Errorf("a stopped replica still exports lag for %v", lag)
	}
	a.stop()
	if err := <-a.done; err != nil {
		t.Fatalf("first replica: %v", err)
	}
}
