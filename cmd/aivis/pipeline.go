package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/enrich"
	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/config"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// pipeline is every stage in one process, as `aivis dev` runs it. Each
// stage has its own context so that drain can stop them front to back.
type pipeline struct {
	cfg     config.Config
	log     *slog.Logger
	cluster *kfake.Cluster
	brokers []string
	store   *chsink.Store

	ingestURL string
	token     string

	stages  []*runningStage // in pipeline order: ingest, enrich, aggregate
	agg     *aggregate.Stage
	scorer  *aggregate.Scorer
	clients []*kgo.Client
}

type runningStage struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (p *pipeline) start(name string, run func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningStage{name: name, cancel: cancel, done: make(chan struct{})}
	p.stages = append(p.stages, rs)
	go func() {
		defer close(rs.done)
		rs.err = run(ctx)
		if rs.err != nil && ctx.Err() == nil {
			p.log.Error("stage stopped", "stage", name, "err", rs.err)
		}
	}()
}

// startPipeline starts Kafka (embedded unless brokers are configured),
// migrates ClickHouse and starts ingest, enrich and aggregate. token is
// the raw producer token that clients of this pipeline use, if known.
func startPipeline(ctx context.Context, cfg config.Config, token string, log *slog.Logger) (_ *pipeline, err error) {
	p := &pipeline{cfg: cfg, log: log, brokers: cfg.Kafka.Brokers, token: token}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if len(p.brokers) == 0 {
		p.cluster, p.brokers, err = bus.Embedded(cfg.Kafka.Partitions)
		if err != nil {
			return nil, err
		}
		log.Info("embedded Kafka cluster started", "brokers", p.brokers)
	} else if err := bus.EnsureTopics(ctx, p.brokers, cfg.Kafka.Partitions, cfg.Kafka.Replication); err != nil {
		return nil, err
	}

	p.store, err = chsink.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return nil, err
	}
	if _, err := p.store.Migrate(ctx); err != nil {
		return nil, err
	}

	// ingest
	icfg := cfg.Ingest
	prodCl, err := kgo.NewClient(append(bus.Opts(p.brokers, cfg.Kafka.ClientID+"-ingest"), ingest.ClientOptions(icfg)...)...)
	if err != nil {
		return nil, fmt.Errorf("creating the ingest Kafka client: %w", err)
	}
	p.clients = append(p.clients, prodCl)
	srv, err := ingest.New(icfg, prodCl, log.With("stage", "ingest"))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", icfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("listening for the ingest API on %s (choose another with --ingest.listen_addr): %w", icfg.ListenAddr, err)
	}
	p.ingestURL = "http://" + ln.Addr().String() + "/v1/events"
	p.start("ingest", func(ctx context.Context) error { return srv.Serve(ctx, ln) })

	// enrich
	enricher, err := enrich.Load(cfg.Enrich)
	if err != nil {
		return nil, err
	}
	enrCl, err := kgo.NewClient(append(enrich.ConsumerOpts(p.brokers), kgo.ClientID(cfg.Kafka.ClientID+"-enrich"))...)
	if err != nil {
		return nil, fmt.Errorf("creating the enrich Kafka client: %w", err)
	}
	p.clients = append(p.clients, enrCl)
	est := enrich.NewStage(enrCl, enricher, log.With("stage", "enrich"))
	p.start("enrich", func(ctx context.Context) error {
		go func() { _ = est.Watch(ctx, cfg.Enrich) }()
		return est.Run(ctx)
	})

	// aggregate
	p.agg, err = aggregate.NewStage(cfg.Aggregate, cfg.Aggregate.Topic, bus.Opts(p.brokers, cfg.Kafka.ClientID+"-aggregate"), p.store, log.With("stage", "aggregate"))
	if err != nil {
		return nil, err
	}
	p.start("aggregate", p.agg.Run)
	if cfg.Aggregate.ScoreAnomalies {
		p.scorer = aggregate.NewScorer(cfg.Aggregate.Anomaly, cfg.Aggregate.Window, p.store, log.With("stage", "anomaly"))
		p.start("anomaly", p.scorer.Run)
	}
	return p, nil
}

// drain stops the stages front to back: ingest stops accepting, enrich
// finishes the raw topic, aggregate finishes the enriched topic and emits
// every open window, and the scorer scores what landed. Each wait is
// bounded by timeout.
func (p *pipeline) drain(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var errs []error
	stop := func(name string) {
		for _, s := range p.stages {
			if s.name == name {
				s.cancel()
				<-s.done
				if s.err != nil && !errors.Is(s.err, context.Canceled) {
					errs = append(errs, fmt.Errorf("%s: %w", name, s.err))
				}
			}
		}
	}
	stop("ingest")
	if err := p.waitEnriched(ctx); err != nil {
		errs = append(errs, err)
	}
	stop("enrich")
	if err := p.waitAggregated(ctx); err != nil {
		errs = append(errs, err)
	}
	stop("aggregate")
	stop("anomaly")
	if p.scorer != nil {
		final := p.cfg.Aggregate.Anomaly
		final.SettleWindows = 0
		if _, err := aggregate.NewScorer(final, p.cfg.Aggregate.Window, p.store, p.log).ScoreOnce(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (p *pipeline) waitEnriched(ctx context.Context) error {
	for {
		lag, err := bus.GroupLag(ctx, p.brokers, enrich.ConsumerGroup, schemas.TopicRaw)
		if err == nil && lag == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for enrich to finish the raw topic (lag %d): %w", lag, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (p *pipeline) waitAggregated(ctx context.Context) error {
	for {
		ends, err := bus.EndOffsets(ctx, p.brokers, p.cfg.Aggregate.Topic)
		if err == nil {
			pos := p.agg.Positions()
			done := true
			for part, end := range ends {
				at, owned := pos[part]
				if end > 0 && (!owned || at < end-1) {
					done = false
				}
			}
			if done {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for aggregate to finish the enriched topic: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (p *pipeline) close() {
	var wg sync.WaitGroup
	for _, s := range p.stages {
		s.cancel()
		wg.Add(1)
		go func() { defer wg.Done(); <-s.done }()
	}
	wg.Wait()
	for _, c := range p.clients {
		c.Close()
	}
	if p.store != nil {
		_ = p.store.Close()
	}
	if p.cluster != nil {
		p.cluster.Close()
	}
}
