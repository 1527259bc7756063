// Package demodata fills a test's ClickHouse database the way `make demo`
// does: the whole pipeline (embedded Kafka, ingest, enrich, aggregate, the
// anomaly scorer and the example budgets) on synthetic LLM traffic with a
// staged spike, plus an hour of GPU usage by three teams, drained so that
// every window is in ClickHouse. Tests of the read side (the web view, the
// FOCUS export) read what the real pipeline wrote.
package demodata

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/aivis-dev/aivis/internal/config"
	"github.com/aivis-dev/aivis/internal/loadgen"
	"github.com/aivis-dev/aivis/internal/pipeline"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// Options shape the traffic: Rate events per second for Duration, with
// TimeScale event seconds per wall second.
type Options struct {
	Rate      float64
	Duration  time.Duration
	TimeScale float64
}

// Data is a filled database.
type Data struct {
	Store *clickhouse.Store
	// From and Until bound every window written, [From, Until).
	From, Until time.Time
	// Metrics are the pipeline's metric families after the drain.
	Metrics []*dto.MetricFamily
}

// Fill runs the pipeline into a fresh database of the test's and returns
// the store (closed when the test ends).
func Fill(t *testing.T, o Options) Data {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	addr, db := testenv.ClickHouseDatabase(t)
	cfg := config.Default()
	cfg.ClickHouse.Addr, cfg.ClickHouse.Database = addr, db
	cfg.Ingest.ListenAddr = "127.0.0.1:0"
	cfg.Ingest.AllowAnonymous = true
	cfg.Aggregate.FlushInterval = 200 * time.Millisecond
	cfg.Aggregate.IdleTimeout = 2 * time.Second
	cfg.Budget.Path = filepath.Join(root, "deploy", "budgets.example.yaml")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := pipeline.Start(ctx, cfg, "", log)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	lg := loadgen.DefaultConfig()
	lg.Rate, lg.Duration, lg.TimeScale, lg.Scenario = o.Rate, o.Duration, o.TimeScale, "spike"
	began := time.Now().UTC()
	if _, err := loadgen.Run(ctx, lg, &loadgen.HTTPSink{URL: p.IngestURL, Client: &http.Client{Timeout: 30 * time.Second}}, nil); err != nil {
		t.Fatalf("load generator: %v", err)
	}
	postGPUUsage(t, p.IngestURL, began)
	if err := p.Drain(time.Minute); err != nil {
		t.Fatalf("draining the pipeline: %v", err)
	}
	metrics, err := p.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering the pipeline's metrics: %v", err)
	}
	// The pipeline's store closes with it: the test gets one of its own.
	store, err := clickhouse.Open(context.Background(), cfg.ClickHouse)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	back := time.Duration(float64(o.Duration)*o.TimeScale) + time.Hour
	return Data{Store: store, Metrics: metrics, From: began.Add(-back).Truncate(time.Minute), Until: time.Now().UTC().Add(time.Hour).Truncate(time.Minute)}
}

// postGPUUsage sends an hour of GPU usage by three teams before end, one
// event per GPU and five minutes, through ingest.
func postGPUUsage(t *testing.T, ingestURL string, end time.Time) {
	t.Helper()
	var body bytes.Buffer
	n := 0
	for i, team := range []string{"ml-research", "search", "ml-research", "recsys"} {
		for m := 60; m > 0; m -= 5 {
			at := end.Add(-time.Duration(m) * time.Minute)
			busy := 300 * float64(40+15*i) / 100
			fmt.Fprintf(&body, `{"schema_version":"1","event_id":"01JDEMOGPU%02d%04d%012d","time":%q,"kind":"gpu.usage","source":"node-%d","labels":{"team":%q,"project":"training"},"gpu":{"gpu_model":"H100-SXM-80GB","interval_seconds":300,"allocated_gpu_seconds":300,"busy_gpu_seconds":%g}}`+"\n",
				i, m, n, at.Format(time.RFC3339), i, team, busy)
			n++
		}
	}
	res, err := http.Post(ingestURL, "application/x-ndjson", &body)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("posting GPU usage: %d %s", res.StatusCode, msg)
	}
}
