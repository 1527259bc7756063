// Package benchmarks holds system-level throughput runs of the whole
// pipeline; per-stage micro-benchmarks live beside their code. Results and
// the commands that produced them are in README.md.
package benchmarks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/config"
	"github.com/aivis-dev/aivis/internal/loadgen"
	"github.com/aivis-dev/aivis/internal/pipeline"
	"github.com/aivis-dev/aivis/internal/testenv"
)

const eventsPerRun = 200_000

func start(b *testing.B) (*pipeline.Pipeline, func()) {
	b.Helper()
	addr, db := testenv.ClickHouseDatabase(b)
	cfg := config.Default()
	cfg.ClickHouse.Addr, cfg.ClickHouse.Database = addr, db
	cfg.Ingest.ListenAddr = "127.0.0.1:0"
	cfg.Aggregate.IdleTimeout = time.Second
	cfg.Aggregate.ScoreAnomalies = false
	token := ingest.NewToken()
	cfg.Ingest.Producers = []ingest.ProducerToken{{Name: "bench", TokenSHA256: ingest.HashToken(token)}}
	p, err := pipeline.Start(context.Background(), cfg, token, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	return p, p.Close
}

// events returns n valid events (no duplicates or malformed ones) as
// NDJSON lines, generated before the clock starts.
func events(n int) [][]byte {
	cfg := loadgen.DefaultConfig()
	cfg.DuplicateRate, cfg.MalformedRate, cfg.DiurnalAmplitude = 0, 0, 0
	// Spread over the 50 minutes that end 5 minutes ago: within the event
	// times ingest accepts, and in the past however long generation takes.
	cfg.Start = time.Now().Add(-55 * time.Minute)
	cfg.TimeScale = 50 * 60 * cfg.Rate / float64(n)
	g := loadgen.NewGenerator(cfg)
	out := make([][]byte, 0, n)
	for len(out) < n {
		it := g.Next()
		if it.Malformed || it.Duplicate {
			continue
		}
		out = append(out, it.Raw)
	}
	return out
}

// waitCounted polls ClickHouse until every event is in a written window
// (windows close after the 1 s idle timeout once the stream stops).
func waitCounted(b *testing.B, p *pipeline.Pipeline, n int) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		rows, err := p.Store.Query(context.Background(), "SELECT toUInt64(sum(requests)) FROM cost_by_window")
		if err != nil {
			b.Fatal(err)
		}
		var got uint64
		for rows.Next() {
			_ = rows.Scan(&got)
		}
		rows.Close()
		if got == uint64(n) {
			return
		}
		if got > uint64(n) || time.Now().After(deadline) {
			b.Fatalf("ClickHouse counts %d requests, want %d", got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkPipelineHTTP: POST /v1/events (NDJSON, 500 per request, 4
// concurrent clients) → Kafka → enrich → aggregate → ClickHouse, on the
// embedded Kafka cluster, until the last window is in ClickHouse.
func BenchmarkPipelineHTTP(b *testing.B) {
	lines := events(eventsPerRun)
	for i := 0; i < b.N; i++ {
		p, stop := start(b)
		began := time.Now()
		var wg sync.WaitGroup
		batches := make(chan []byte)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for body := range batches {
					req, _ := http.NewRequest(http.MethodPost, p.IngestURL, bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+p.Token)
					req.Header.Set("Content-Type", "application/x-ndjson")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						b.Error(err)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						b.Errorf("status %d", resp.StatusCode)
					}
				}
			}()
		}
		for j := 0; j < len(lines); j += 500 {
			batches <- bytes.Join(lines[j:min(j+500, len(lines))], []byte("\n"))
		}
		close(batches)
		wg.Wait()
		waitCounted(b, p, eventsPerRun)
		elapsed := time.Since(began)
		b.ReportMetric(float64(eventsPerRun)/elapsed.Seconds(), "events/s")
		stop()
	}
}

// BenchmarkPipelineKafka: events produced straight to the raw topic, as the
// Go client does, through enrich and aggregate into ClickHouse.
func BenchmarkPipelineKafka(b *testing.B) {
	lines := events(eventsPerRun)
	for i := 0; i < b.N; i++ {
		p, stop := start(b)
		cl, err := kgo.NewClient(kgo.SeedBrokers(p.Brokers...), kgo.DefaultProduceTopic("aivis.usage.raw.v1"))
		if err != nil {
			b.Fatal(err)
		}
		began := time.Now()
		recs := make([]*kgo.Record, len(lines))
		for j, l := range lines {
			recs[j] = &kgo.Record{Key: []byte(fmt.Sprint(j)), Value: l}
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		cl.Close()
		waitCounted(b, p, eventsPerRun)
		b.ReportMetric(float64(eventsPerRun)/time.Since(began).Seconds(), "events/s")
		stop()
	}
}
