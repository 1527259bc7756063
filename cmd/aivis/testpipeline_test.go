package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/config"
	"github.com/aivis-dev/aivis/internal/pipeline"
	"github.com/aivis-dev/aivis/internal/testenv"
)

// testConfig is the configuration the in-process pipeline tests share: a
// ClickHouse database of their own, the e2e catalog, ingest on a free port
// with a fresh producer token (returned), and short flushes. With brokers
// the pipeline runs on them, in an aggregator group of its own; without,
// on the embedded cluster.
func testConfig(t *testing.T, brokers []string, partitions int32) (config.Config, string) {
	t.Helper()
	addr, db := testenv.ClickHouseDatabase(t)
	cfg := config.Default()
	cfg.Kafka.Partitions = partitions
	if len(brokers) > 0 {
		cfg.Kafka.Brokers = brokers
		cfg.Aggregate.Group = "aivis-aggregate-" + db
	}
	cfg.ClickHouse.Addr, cfg.ClickHouse.Database = addr, db
	cfg.Ingest.ListenAddr = "127.0.0.1:0"
	cfg.Enrich.CatalogPath = writeTestFile(t, "catalog.yaml", e2eCatalog)
	cfg.Aggregate.FlushInterval = 200 * time.Millisecond
	cfg.Aggregate.IdleTimeout = 2 * time.Second
	token := ingest.NewToken()
	cfg.Ingest.Producers = []ingest.ProducerToken{{Name: "test", TokenSHA256: ingest.HashToken(token)}}
	return cfg, token
}

// writeTestFile writes body to a file of the test's temporary folder and
// returns its path.
func writeTestFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startPipeline validates cfg and starts the pipeline, closed when the
// test ends; the context bounds the test's own calls.
func startPipeline(t *testing.T, cfg config.Config, token string, log *slog.Logger) (*pipeline.Pipeline, context.Context) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	p, err := pipeline.Start(ctx, cfg, token, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, ctx
}
