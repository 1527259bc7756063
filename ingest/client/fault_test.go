package client_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/enrich"
	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/ingest/client"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/config"
	"github.com/aivis-dev/aivis/internal/pipeline"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// TestFaultClientBrokerRestart: the Go client delivers a stream of events
// through a broker restart with no loss and no duplicate in ClickHouse.
// It sends 5,000 events over about 8 s to the real broker, restarts the
// broker mid-stream with deploy/scripts/kafka.sh, resends every event that
// OnError hands back (same event_id), runs the whole pipeline to
// ClickHouse and counts the events there.
//
// It restarts the shared broker, so it belongs with the serial fault tests
// (`-run '^TestFault'`). The pipeline's topics have fixed names: it starts
// the pipeline at their end and counts only its own events, by a source and
// a model name unique to the run.
func TestFaultClientBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: needs Kafka and ClickHouse")
	}
	const n = 5000
	brokers := testenv.Kafka(t)
	chAddr, db := testenv.ClickHouseDatabase(t)
	script := testenv.KafkaScript()
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("finding the broker script: %v", err)
	}
	cfg := config.Default()
	cfg.Kafka.Partitions = 3
	cfg.Kafka.Brokers = brokers
	cfg.Aggregate.Group = "aivis-aggregate-" + db
	skipBacklog(t, brokers, cfg.Aggregate.Group)
	cfg.Aggregate.FlushInterval = 200 * time.Millisecond
	cfg.Aggregate.IdleTimeout = 3 * time.Second
	cfg.Aggregate.ScoreAnomalies = false
	cfg.ClickHouse.Addr, cfg.ClickHouse.Database = chAddr, db
	cfg.Ingest.ListenAddr = "127.0.0.1:0"
	token := ingest.NewToken()
	cfg.Ingest.Producers = []ingest.ProducerToken{{Name: "client-test", TokenSHA256: ingest.HashToken(token)}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	p, err := pipeline.Start(ctx, cfg, token, log)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	source := "client-restart-" + hex.EncodeToString(suffix[:])
	model := "model-" + source

	// OnError must not block: failures go to the resender. Each event is
	// in flight at most once, so n slots never fill.
	retry := make(chan *schemas.Event, n)
	var errMu sync.Mutex
	errSeen := map[string]bool{}
	c, err := client.New(client.Config{
		Brokers:           brokers,
		Source:            source,
		MaxBufferedEvents: 1000,
		DeliveryTimeout:   3 * time.Second,
		OnError: func(ev *schemas.Event, err error) {
			errMu.Lock()
			if cause := errors.Unwrap(err).Error(); !errSeen[cause] {
				errSeen[cause] = true
				t.Logf("delivery failed, resending (first of its kind): %v", err)
			}
			errMu.Unlock()
			retry <- ev
		},
	}, kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var resent atomic.Int64
	var wg sync.WaitGroup
	rctx, stopResend := context.WithCancel(ctx)
	wg.Go(func() {
		for {
			select {
			case ev := <-retry:
				if err := c.Send(rctx, ev); err != nil {
					if rctx.Err() == nil {
						t.Errorf("resending event %s: %v", ev.EventID, err)
					}
					return
				}
				resent.Add(1)
				// A failure that repeats at once must not spin.
				time.Sleep(time.Millisecond)
			case <-rctx.Done():
				return
			}
		}
	})

	restarted := make(chan error, 1)
	var wantInput int64
	start := time.Now()
	step := 8 * time.Second / n
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * step)); wait > 0 {
			time.Sleep(wait)
		}
		if i == n*3/8 {
			go func() {
				cmd := exec.Command(script, "restart")
				cmd.Env = append(os.Environ(), "AIVISDEV_KAFKA_DIR="+testenv.KafkaDir())
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Logf("%s restart:\n%s", script, out)
				}
				restarted <- err
			}()
		}
		in := int64(10 + i%1000)
		wantInput += in
		ev := &schemas.Event{Kind: schemas.KindLLMRequest, Provider: "openai", Model: model, Status: schemas.StatusOK,
			Usage: &schemas.Usage{InputTokens: schemas.Int64(in), OutputTokens: schemas.Int64(3)}}
		if err := c.Send(ctx, ev); err != nil {
			t.Fatalf("sending event %d: %v", i, err)
		}
	}
	t.Logf("sent %d events in %v", n, time.Since(start).Round(time.Millisecond))
	if err := <-restarted; err != nil {
		t.Fatalf("restarting the broker: %v", err)
	}
	t.Logf("broker restarted after %v", time.Since(start).Round(time.Millisecond))
	for c.Stats().Acked < n {
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d events acknowledged: %+v", c.Stats().Acked, n, c.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopResend()
	wg.Wait()
	s := c.Stats()
	t.Logf("client stats %+v, %d resent; acknowledged after %v", s, resent.Load(), time.Since(start).Round(time.Millisecond))
	if s.Acked != n || s.Sent != n+resent.Load() {
		t.Fatalf("client stats %+v with %d resends: want %d acknowledged, one send per event and resend", s, resent.Load(), n)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}

	if err := p.Drain(2 * time.Minute); err != nil {
		t.Fatalf("draining the pipeline: %v", err)
	}
	var rows, distinct uint64
	if err := p.Store.QueryRow(ctx, `SELECT count(), uniqExact(event_id) FROM `+chsink.ViewEvents+` WHERE source = ?`, source).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != n || distinct != n {
		t.Errorf("%s holds %d rows, %d distinct event ids of source %s; want %d of each", chsink.ViewEvents, rows, distinct, source, n)
	}
	var requests, input int64
	if err := p.Store.QueryRow(ctx, `SELECT toInt64(sum(requests)), toInt64(sum(input_tokens)) FROM `+chsink.ViewWindows+` WHERE model = ?`, model).Scan(&requests, &input); err != nil {
		t.Fatal(err)
	}
	if requests != n || input != wantInput {
		t.Errorf("%s for model %s: %d requests, %d input tokens; want %d and %d", chsink.ViewWindows, model, requests, input, n, wantInput)
	}
}

// skipBacklog makes the pipeline start at the end of its topics: it
// creates them if missing and commits the end offsets for the enrich group
// and the test's aggregate group. Deleting and recreating the topics
// instead leaves the broker cleaning up the old logs while the test
// restarts it, which the pipeline's stages do not survive reliably.
func skipBacklog(t *testing.T, brokers []string, aggregateGroup string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.EnsureTopics(ctx, brokers, 3, 1); err != nil {
		t.Fatalf("creating the pipeline topics: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for group, topic := range map[string]string{enrich.ConsumerGroup: schemas.TopicRaw, aggregateGroup: schemas.TopicEnriched} {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			t.Fatalf("listing the end offsets of %s: %v", topic, err)
		}
		resp, err := adm.CommitOffsets(ctx, group, ends.Offsets())
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("committing the end offsets of %s for group %s (is another pipeline running?): %v", topic, group, err)
		}
	}
}
