// Package pipeline runs every aivis stage in one process, as `aivis dev`,
// the end-to-end tests and the throughput benchmarks do: Kafka (embedded
// unless brokers are configured), ingest, enrich, aggregate and the anomaly
// scorer, with a drain that stops them front to back.
package pipeline

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
	"github.com/aivis-dev/aivis/internal/obs"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// pipeline is every stage in one process, as `aivis dev` runs it. Each
// stage has its own context so that drain can stop them front to back.
type Pipeline struct {
	cfg     config.Config
	log     *slog.Logger
	cluster *kfake.Cluster
	// Brokers are the seed brokers the stages use.
	Brokers []string
	// Store is the ClickHouse store the aggregator writes to.
	Store *chsink.Store

	// IngestURL is the POST /v1/events endpoint.
	IngestURL string
	// Token is the producer token for IngestURL, when known.
	Token string

	stages []*runningStage // in pipeline order: ingest, enrich, aggregate
	// Agg is the aggregator stage.
	Agg     *aggregate.Stage
	scorer  *aggregate.Scorer
	alerts  aggregate.KafkaAlerts
	clients []*kgo.Client
}

type runningStage struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (p *Pipeline) start(name string, run func(ctx context.Context) error) {
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

// Start starts Kafka (embedded unless brokers are configured),
// migrates ClickHouse and starts ingest, enrich and aggregate. token is
// the raw producer token that clients of this pipeline use, if known.
func Start(ctx context.Context, cfg config.Config, token string, log *slog.Logger) (_ *Pipeline, err error) {
	p := &Pipeline{cfg: cfg, log: log, Brokers: cfg.Kafka.Brokers, Token: token}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if len(p.Brokers) == 0 {
		p.cluster, p.Brokers, err = bus.Embedded(cfg.Kafka.Partitions)
		if err != nil {
			return nil, err
		}
		log.Info("embedded Kafka cluster started", "brokers", p.Brokers)
	} else if err := bus.EnsureTopics(ctx, p.Brokers, cfg.Kafka.Partitions, cfg.Kafka.Replication); err != nil {
		return nil, err
	}

	p.Store, err = chsink.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return nil, err
	}
	if _, err := p.Store.Migrate(ctx); err != nil {
		return nil, err
	}

	// ingest
	icfg := cfg.Ingest
	prodCl, err := kgo.NewClient(append(bus.Opts(p.Brokers, cfg.Kafka.ClientID+"-ingest"), ingest.ClientOptions(icfg)...)...)
	if err != nil {
		return nil, fmt.Errorf("creating the ingest Kafka client: %w", err)
	}
	p.clients = append(p.clients, prodCl)
	srv, err := ingest.New(icfg, prodCl, obs.Registry, log.With("stage", "ingest"))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", icfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("listening for the ingest API on %s (choose another with --ingest.listen_addr): %w", icfg.ListenAddr, err)
	}
	p.IngestURL = "http://" + ln.Addr().String() + "/v1/events"
	p.start("ingest", func(ctx context.Context) error { return srv.Serve(ctx, ln) })

	// enrich
	enricher, err := enrich.Load(cfg.Enrich)
	if err != nil {
		return nil, err
	}
	// A produce failure ends enrich's Run with its offsets committed only up
	// to the last acknowledged record; a fresh client resumes from there.
	// (Standalone, the process exits and its supervisor restarts it.)
	enrichOpts := append(enrich.ConsumerOpts(p.Brokers), kgo.ClientID(cfg.Kafka.ClientID+"-enrich"))
	elog := log.With("stage", "enrich")
	p.start("enrich", func(ctx context.Context) error {
		for attempt := 0; ; attempt++ {
			cl, err := kgo.NewClient(enrichOpts...)
			if err != nil {
				return fmt.Errorf("creating the enrich Kafka client: %w", err)
			}
			est := enrich.NewStage(cl, enricher, elog)
			wctx, stopWatch := context.WithCancel(ctx)
			go func() { _ = est.Watch(wctx, cfg.Enrich) }()
			err = est.Run(ctx)
			stopWatch()
			cl.Close()
			if err == nil || ctx.Err() != nil {
				return err
			}
			wait := min(time.Duration(attempt+1)*time.Second, 10*time.Second)
			elog.Warn("enrich stopped; restarting it from the committed offsets", "err", err, "in", wait)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	})

	// aggregate
	p.Agg, err = aggregate.NewStage(cfg.Aggregate, cfg.Aggregate.Topic, bus.Opts(p.Brokers, cfg.Kafka.ClientID+"-aggregate"), p.Store, log.With("stage", "aggregate"))
	if err != nil {
		return nil, err
	}
	p.start("aggregate", p.Agg.Run)
	if cfg.Aggregate.ScoreAnomalies {
		alertCl, err := kgo.NewClient(bus.Opts(p.Brokers, cfg.Kafka.ClientID+"-alerts")...)
		if err != nil {
			return nil, fmt.Errorf("creating the alerts Kafka client: %w", err)
		}
		p.clients = append(p.clients, alertCl)
		p.alerts = aggregate.KafkaAlerts{Client: alertCl, Topic: schemas.TopicAlerts}
		p.scorer = aggregate.NewScorer(cfg.Aggregate.Anomaly, cfg.Aggregate.Window, p.Store, log.With("stage", "anomaly"))
		p.scorer.PublishTo(p.alerts)
		p.start("anomaly", p.scorer.Run)
	}
	return p, nil
}

// Drain stops the stages front to back: ingest stops accepting, enrich
// finishes the raw topic, aggregate finishes the enriched topic and emits
// every open window, and the scorer scores what landed. Each wait is
// bounded by timeout.
func (p *Pipeline) Drain(timeout time.Duration) error {
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
		last := aggregate.NewScorer(final, p.cfg.Aggregate.Window, p.Store, p.log)
		last.PublishTo(p.alerts)
		if _, err := last.ScoreOnce(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (p *Pipeline) waitEnriched(ctx context.Context) error {
	for {
		lag, err := bus.GroupLag(ctx, p.Brokers, enrich.ConsumerGroup, schemas.TopicRaw)
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

func (p *Pipeline) waitAggregated(ctx context.Context) error {
	for {
		ends, err := bus.EndOffsets(ctx, p.Brokers, p.cfg.Aggregate.Topic)
		if err == nil {
			pos := p.Agg.Positions()
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

func (p *Pipeline) Close() {
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
	if p.Store != nil {
		_ = p.Store.Close()
	}
	if p.cluster != nil {
		p.cluster.Close()
	}
}
