package pipeline

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/aivis-dev/aivis/internal/config"
)

// Pipeline is a whole pipeline running in this process, as the end-to-end
// tests and benchmarks use it: Kafka embedded unless brokers are
// configured, ingest, enrich and aggregate (the scorer only with
// aggregate.score_anomalies), no ops endpoints, and a drain that stops them
// front to back.
type Pipeline struct {
	*Process
	// Token is the producer token for IngestURL, when known.
	Token string

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error
}

// Start builds and starts the pipeline. token is the raw producer token
// that clients of this pipeline use, if known.
func Start(ctx context.Context, cfg config.Config, token string, log *slog.Logger) (*Pipeline, error) {
	stages := []Stage{Ingest, Enrich, Aggregate}
	if cfg.Aggregate.ScoreAnomalies {
		stages = append(stages, Anomaly)
	}
	cfg.MetricsAddr = ""
	proc, err := Build(ctx, cfg, Options{Stages: stages, Embedded: true, Drain: true, Log: log})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p := &Pipeline{Process: proc, Token: token, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = proc.Run(runCtx)
	}()
	return p, nil
}

// Drain stops the stages front to back, each after its input is consumed
// (bounded by timeout as a whole), and returns what went wrong.
func (p *Pipeline) Drain(timeout time.Duration) error {
	p.once.Do(func() {
		p.group.DrainTimeout = timeout
		p.cancel()
		<-p.done
	})
	return p.err
}

// Close stops whatever still runs and closes the clients and the store.
func (p *Pipeline) Close() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
	})
	p.Process.Close()
}
