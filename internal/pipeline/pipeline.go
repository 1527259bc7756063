// Package pipeline builds the stages of one aivis process from its
// configuration. `aivis ingest`, `aivis enrich`, `aivis aggregate`,
// `aivis gpuprobe` and `aivis dev` all go through Build, so every stage is
// wired in one place: its Kafka clients (from one bus.Dialer), its topics
// (checked and created by one bus.TopicGuard), the ClickHouse store, the
// metrics registry of the process and its readiness checks. The stages then
// run as one supervised actor.Group (see package actor for the policy).
//
// Stop order, front to back: the actors in Options.Front (a load
// generator), ingest (stops accepting), enrich (with Drain: after the raw
// topic is consumed), aggregate (with Drain: after the enriched topic is
// consumed; emits every open window), the budget evaluator (with Drain:
// one last evaluation), the anomaly scorer (with Drain: one
// last pass over every window), serving (one last delivery of pending
// events), gpuprobe, the topic guard, and last the ops
// endpoints, so /metrics answers during the drain. Close then closes the
// clients and the store.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/alerts"
	"github.com/aivis-dev/aivis/budget"
	"github.com/aivis-dev/aivis/enrich"
	"github.com/aivis-dev/aivis/governance"
	"github.com/aivis-dev/aivis/gpuprobe"
	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/actor"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/config"
	"github.com/aivis-dev/aivis/internal/obs"
	"github.com/aivis-dev/aivis/savings"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/serving"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// Stage names a part Build can assemble.
type Stage string

// The stages, in pipeline order.
const (
	Ingest    Stage = "ingest"
	Enrich    Stage = "enrich"
	Aggregate Stage = "aggregate"
	Anomaly   Stage = "anomaly"
	GPUProbe  Stage = "gpuprobe"
	Serving   Stage = "serving"
)

// Member is an actor placed by the caller.
type Member struct {
	Name  string
	Actor actor.Actor
	Opts  actor.Options
}

// Options say what one process runs.
type Options struct {
	Stages []Stage
	// Embedded starts an in-process Kafka cluster when kafka.brokers is
	// empty (aivis dev); otherwise brokers are required.
	Embedded bool
	// Drain makes a graceful stop wait until each stage's input is consumed
	// before stopping it: right when the whole pipeline runs in this
	// process, wrong for one stage of a distributed one.
	Drain bool
	// DrainTimeout bounds that wait (default 2 minutes).
	DrainTimeout time.Duration
	// Front actors run before every stage and are stopped first.
	Front []Member
	// GPU configures gpuprobe.
	GPU GPUOptions
	// Out receives serving's events as JSON lines when no brokers are
	// configured.
	Out io.Writer
	// Log is the process logger.
	Log *slog.Logger
}

// GPUOptions configure the gpuprobe stage.
type GPUOptions struct {
	// Interval overrides gpuprobe.sample_interval when positive.
	Interval time.Duration
	// Out receives the events as JSON lines when no brokers are configured.
	Out io.Writer
}

// Process is what Build made: the actors of one process and what they share.
type Process struct {
	cfg  config.Config
	log  *slog.Logger
	opts Options

	// Registry holds the metrics of exactly the stages this process runs.
	Registry *prometheus.Registry
	// Ready is what /readyz reports.
	Ready *obs.Readiness
	// Brokers are the seed brokers the stages use.
	Brokers []string
	// Topics is the guard of the topics the stages need.
	Topics *bus.TopicGuard
	// Store is the ClickHouse store, when a stage needs one.
	Store *chsink.Store
	// IngestURL is the POST /v1/events endpoint, when ingest runs.
	IngestURL string
	// Agg is the aggregator, when it runs.
	Agg *aggregate.Stage
	// Scorer is the anomaly scorer, when it runs.
	Scorer *aggregate.Scorer
	// Budget is the budget evaluator, when aggregate runs with budgets.
	Budget *budget.Evaluator
	// Governance is the governance signal evaluator, when enabled.
	Governance *governance.Evaluator
	// Savings is the daily savings recommender, when aggregate runs with
	// savings rules.
	Savings *savings.Recommender

	group    *actor.Group
	dialer   bus.Dialer
	security bus.Security
	webhooks *alerts.Webhooks // shared by the scorer and the budget evaluator
	cluster  *kfake.Cluster
	clients  []*kgo.Client
	closers  []func() error
}

// Build assembles the stages of opts. On error everything it opened is
// closed again. The caller runs the result with Run and then calls Close.
func Build(ctx context.Context, cfg config.Config, opts Options) (_ *Process, err error) {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 2 * time.Minute
	}
	p := &Process{cfg: cfg, log: log, opts: opts, Registry: obs.NewRegistry(), Ready: obs.NewReadiness(), Brokers: cfg.Kafka.Brokers}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	p.group = actor.New(log, p.Registry)
	p.group.DrainTimeout = opts.DrainTimeout
	has := func(s Stage) bool { return slices.Contains(opts.Stages, s) }
	// gpuprobe and serving alone write JSON lines when no brokers are set.
	kafkaFree := len(opts.Stages) == 1 && (has(GPUProbe) || has(Serving)) && len(cfg.Kafka.Brokers) == 0

	if len(p.Brokers) == 0 && !kafkaFree {
		if !opts.Embedded {
			return nil, errors.New("no Kafka brokers configured: set kafka.brokers (flag --kafka.brokers, env AIVIS_KAFKA__BROKERS), or use `aivis dev` for an embedded cluster")
		}
		p.cluster, p.Brokers, err = bus.Embedded(cfg.Kafka.Partitions)
		if err != nil {
			return nil, err
		}
		log.Info("embedded Kafka cluster started", "brokers", p.Brokers)
	}
	// The embedded cluster speaks plain TCP; kafka.tls and kafka.sasl are
	// for the configured brokers.
	sec := cfg.Kafka.Security()
	if p.cluster != nil {
		sec = bus.Security{}
	}
	dialer, err := bus.NewDialer(p.Brokers, cfg.Kafka.ClientID, sec)
	if err != nil {
		return nil, err
	}
	dialer.Compression = cfg.Kafka.Compression
	p.dialer, p.security = dialer, sec

	if !kafkaFree {
		if err := p.guardTopics(ctx, dialer, topicsFor(cfg, opts.Stages)); err != nil {
			return nil, err
		}
	}
	if has(Aggregate) || has(Anomaly) {
		p.Store, err = chsink.Open(ctx, cfg.ClickHouse, chsink.WithMetrics(p.Registry))
		if err != nil {
			return nil, err
		}
		p.closers = append(p.closers, p.Store.Close)
		if _, err := p.Store.Migrate(ctx); err != nil {
			return nil, err
		}
		// Not a reason to stop aggregating (a shard may be down in cluster
		// mode): the views keep the previous values until the next start.
		energy, grid := cfg.GPUCost.Settings()
		if err := p.Store.WriteGPUSettings(ctx, energy, grid); err != nil {
			log.Warn("writing gpu_cost to gpu_settings failed; the GPU views keep the previous values until the next start", "err", err)
		}
	}
	for _, m := range opts.Front {
		p.group.Add(m.Name, m.Actor, m.Opts)
	}
	if has(Ingest) {
		if err := p.buildIngest(dialer); err != nil {
			return nil, err
		}
	}
	if has(Enrich) {
		if err := p.buildEnrich(dialer); err != nil {
			return nil, err
		}
	}
	if has(Aggregate) {
		if err := p.buildAggregate(dialer); err != nil {
			return nil, err
		}
	}
	if has(Anomaly) {
		if err := p.buildScorer(dialer); err != nil {
			return nil, err
		}
	}
	if p.webhooks != nil {
		// After the scorer and the budget evaluator, which publish to it:
		// it stops last of the three and drains its queues.
		p.group.Add("alert webhooks", p.webhooks, actor.Options{})
		p.closers = append(p.closers, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return p.webhooks.Close(ctx)
		})
	}
	if has(Serving) {
		if err := p.buildServing(dialer, kafkaFree); err != nil {
			return nil, err
		}
	}
	if has(GPUProbe) {
		if err := p.buildGPUProbe(dialer, kafkaFree); err != nil {
			return nil, err
		}
	}
	if p.Topics != nil {
		p.group.Add("topics", p.Topics, actor.Options{})
	}
	p.group.Add("ops", &obs.Server{Addr: cfg.MetricsAddr, Pprof: cfg.Pprof, Registry: p.Registry, Ready: p.Ready, Log: log}, actor.Options{})
	return p, nil
}

// topicsFor lists the topics the stages read or write.
func topicsFor(cfg config.Config, stages []Stage) []string {
	var out []string
	add := func(ts ...string) {
		for _, t := range ts {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	for _, s := range stages {
		switch s {
		case Ingest:
			add(schemas.TopicRaw, schemas.TopicSecurity)
		case GPUProbe, Serving:
			add(schemas.TopicRaw)
		case Enrich:
			add(schemas.TopicRaw, schemas.TopicEnriched, schemas.TopicDeadLetter)
		case Aggregate:
			add(cfg.Aggregate.Topic, schemas.TopicDeadLetter)
			if cfg.Budget.Path != "" || cfg.Savings.Path != "" {
				add(schemas.TopicAlerts)
			}
			if cfg.Governance.Enabled {
				add(schemas.TopicAlerts, schemas.TopicSecurity)
			}
		case Anomaly:
			add(schemas.TopicAlerts)
		}
	}
	return out
}

// guardTopics checks the topics once before the stages start (so that
// consumers find them), creating the missing ones, and keeps a guard that
// re-checks them and answers readiness. Missing topics that cannot be
// created do not stop the process: it logs how to create them, reports not
// ready, and the stages wait for them.
// Dialer is the dialer every Kafka client of the process is made with
// (brokers, client id, TLS and SASL).
func (p *Process) Dialer() bus.Dialer { return p.dialer }

func (p *Process) guardTopics(ctx context.Context, d bus.Dialer, topics []string) error {
	plan := bus.TopicPlan{Topics: topics, Partitions: p.cfg.Kafka.Partitions, Replication: p.cfg.Kafka.Replication, Create: p.cfg.Kafka.CreateTopics}
	p.Topics = bus.NewTopicGuard(d, plan, p.log)
	p.Ready.Add("kafka topics", p.Topics.Ready)
	deadline := time.Now().Add(time.Minute)
	for attempt := 0; ; attempt++ {
		st, err := p.Topics.Check(ctx)
		var missing *bus.MissingTopicsError
		switch {
		case err == nil:
			if len(st.Created) > 0 {
				p.log.Info("created Kafka topics", "topics", st.Created, "partitions", plan.Partitions, "replication", plan.Replication)
			}
			for _, w := range st.Warnings {
				p.log.Warn(w)
			}
			return nil
		case errors.As(err, &missing):
			p.log.Error("Kafka topics are missing; this process reports not ready and waits for them", "err", err)
			return nil
		case bus.Refused(err):
			// Wrong credentials or an untrusted certificate: retrying
			// cannot help.
			return fmt.Errorf("connecting to the Kafka brokers at %v: %w", p.Brokers, p.security.Explain(err))
		case time.Now().After(deadline):
			return fmt.Errorf("checking the Kafka topics (is the broker at %v up and reachable?): %w", p.Brokers, p.security.Explain(err))
		default:
			p.log.Warn("checking the Kafka topics; retrying", "err", p.security.Explain(err))
		}
		if !bus.Sleep(ctx, bus.Backoff(attempt, 2*time.Second)) {
			return ctx.Err()
		}
	}
}

func (p *Process) buildIngest(d bus.Dialer) error {
	cl, err := d.Producer(string(Ingest), ingest.ClientOptions(p.cfg.Ingest)...)
	if err != nil {
		return err
	}
	p.clients = append(p.clients, cl)
	srv, err := ingest.New(p.cfg.Ingest, cl, p.Registry, p.log.With("stage", "ingest"))
	if err != nil {
		return err
	}
	ln, url, err := ingest.Listen(p.cfg.Ingest)
	if err != nil {
		return err
	}
	p.closers = append(p.closers, func() error { _ = ln.Close(); return nil })
	p.IngestURL = url
	p.Ready.Add("ingest", srv.Ready)
	p.Ready.Add("kafka", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return cl.Ping(ctx)
	})
	p.group.Add(string(Ingest), actor.Func(func(ctx context.Context) error { return srv.Serve(ctx, ln) }), actor.Options{})
	return nil
}

func (p *Process) buildEnrich(d bus.Dialer) error {
	st, err := enrich.NewStage(p.cfg.Enrich, enrich.DialWith(d), p.Registry, p.log)
	if err != nil {
		return err
	}
	gov, err := governance.NewEnforcer(p.cfg.Governance, p.Registry, p.log.With("stage", "enrich"))
	if err != nil {
		return err
	}
	st.SetPolicy(gov)
	p.group.Add("enrich policy", gov, actor.Options{})
	opts := actor.Options{
		// A produce failure ends Run with offsets committed only up to the
		// last acknowledged record; a fresh member resumes from there.
		Restart: true,
	}
	if p.opts.Drain {
		opts.Settle = p.waitEnriched
	}
	p.Ready.Add("enrich", st.Ready)
	p.group.Add(string(Enrich), st, opts)
	p.group.Add("enrich rules", st.Watcher(p.cfg.Enrich), actor.Options{})
	return nil
}

func (p *Process) buildAggregate(d bus.Dialer) error {
	st, err := aggregate.NewStage(p.cfg.Aggregate, d, p.Store, p.Registry, p.log.With("stage", "aggregate"))
	if err != nil {
		return err
	}
	p.Agg = st
	p.Ready.Add("clickhouse", st.Ready)
	opts := actor.Options{}
	if p.opts.Drain {
		opts.Settle = p.waitAggregated
	}
	p.group.Add(string(Aggregate), st, opts)
	if p.cfg.Budget.Path != "" {
		if err := p.buildBudget(d); err != nil {
			return err
		}
	}
	if p.cfg.Governance.Enabled {
		if err := p.buildGovernance(d); err != nil {
			return err
		}
	}
	if p.cfg.Savings.Path != "" {
		return p.buildSavings(d)
	}
	return nil
}

func (p *Process) buildScorer(d bus.Dialer) error {
	cl, err := d.Producer("alerts")
	if err != nil {
		return err
	}
	p.clients = append(p.clients, cl)
	sink, err := p.alertSink(aggregate.KafkaAlerts{Client: cl, Topic: schemas.TopicAlerts})
	if err != nil {
		return err
	}
	p.Scorer = aggregate.NewScorer(p.cfg.Aggregate.Anomaly, p.cfg.Aggregate.Window, p.Store, sink, p.Registry, p.log.With("stage", "anomaly"))
	opts := actor.Options{}
	if p.opts.Drain {
		opts.Settle = func(ctx context.Context) error {
			_, err := p.Scorer.ScoreSettled(ctx)
			return err
		}
	}
	p.group.Add(string(Anomaly), p.Scorer, opts)
	return nil
}

func (p *Process) buildGPUProbe(d bus.Dialer, kafkaFree bool) error {
	gcfg := p.cfg.GPUProbe
	if p.opts.GPU.Interval > 0 {
		gcfg.SampleInterval = p.opts.GPU.Interval
		gcfg.Window = max(gcfg.Window, gcfg.SampleInterval)
	}
	probe, err := gpuprobe.OpenSystem(gcfg, p.Registry, p.log.With("stage", "gpuprobe"))
	if err != nil {
		return err
	}
	p.closers = append(p.closers, probe.Close)
	var emit func(ctx context.Context, evs []schemas.Event) error
	if kafkaFree {
		out := p.opts.GPU.Out
		emit = func(_ context.Context, evs []schemas.Event) error {
			return bus.WriteEvents(out, evs, "GPU usage events")
		}
	} else {
		cl, err := d.Producer(string(GPUProbe))
		if err != nil {
			return err
		}
		p.clients = append(p.clients, cl)
		emit = func(ctx context.Context, evs []schemas.Event) error {
			return bus.ProduceEvents(ctx, cl, evs, "GPU usage events")
		}
	}
	p.Ready.Add("gpuprobe", probe.Ready)
	p.group.Add(string(GPUProbe), actor.Func(func(ctx context.Context) error {
		return probe.Run(ctx, func(evs []schemas.Event) error { return emit(ctx, evs) })
	}), actor.Options{})
	return nil
}

func (p *Process) buildServing(d bus.Dialer, kafkaFree bool) error {
	if p.cfg.Serving.TargetsPath == "" {
		return errors.New("no serving targets: set serving.targets_path (flag --serving.targets_path) to a targets file; see docs/serving.md and deploy/serving-targets.example.yaml")
	}
	targets, err := serving.LoadTargets(p.cfg.Serving.TargetsPath)
	if err != nil {
		return err
	}
	var emit serving.Emit
	if kafkaFree {
		out := p.opts.Out
		emit = func(_ context.Context, evs []schemas.Event) error {
			return bus.WriteEvents(out, evs, "serving usage events")
		}
	} else {
		cl, err := d.Producer(string(Serving))
		if err != nil {
			return err
		}
		p.clients = append(p.clients, cl)
		emit = func(ctx context.Context, evs []schemas.Event) error {
			return bus.ProduceEvents(ctx, cl, evs, "serving usage events")
		}
	}
	sc, err := serving.NewScraper(p.cfg.Serving, targets, emit, p.Registry, p.log.With("stage", "serving"))
	if err != nil {
		return err
	}
	p.Ready.Add("serving", sc.Ready)
	p.group.Add(string(Serving), sc, actor.Options{})
	return nil
}

// alertSink sends alerts to the topic and, when alerts.webhooks_path is
// set, to the webhooks it lists.
func (p *Process) alertSink(topic aggregate.KafkaAlerts) (aggregate.AlertSink, error) {
	if p.cfg.Alerts.WebhooksPath == "" {
		return topic, nil
	}
	if p.webhooks == nil {
		hooks, err := alerts.LoadFile(p.cfg.Alerts.WebhooksPath)
		if err != nil {
			return nil, fmt.Errorf("alerts.webhooks_path: %w", err)
		}
		p.webhooks = alerts.NewWebhooks(p.cfg.Alerts, hooks, p.Registry, p.log.With("stage", "alerts"))
	}
	return alerts.Fanout{Topic: topic, Webhooks: p.webhooks}, nil
}

// Run runs every actor until ctx is done or one of them fails or finishes;
// see package actor for what each means.
func (p *Process) Run(ctx context.Context) error { return p.group.Run(ctx) }

// Actors names the actors in stop order.
func (p *Process) Actors() []string { return p.group.Names() }

// Close closes what Build opened, after Run returned.
func (p *Process) Close() {
	for _, c := range p.clients {
		c.Close()
	}
	for i := len(p.closers) - 1; i >= 0; i-- {
		_ = p.closers[i]()
	}
	if p.cluster != nil {
		p.cluster.Close()
	}
}

// waitEnriched waits until the enrich group has committed the whole raw
// topic.
func (p *Process) waitEnriched(ctx context.Context) error {
	for {
		lag, err := p.dialer.GroupLag(ctx, enrich.ConsumerGroup, schemas.TopicRaw)
		if err == nil && lag == 0 {
			return nil
		}
		if !bus.Sleep(ctx, 200*time.Millisecond) {
			return fmt.Errorf("waiting for enrich to finish the raw topic (lag %d): %w", lag, ctx.Err())
		}
	}
}

// waitAggregated waits until the aggregator has processed the last record
// of every partition of its topic.
func (p *Process) waitAggregated(ctx context.Context) error {
	for {
		ends, err := p.dialer.EndOffsets(ctx, p.cfg.Aggregate.Topic)
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
		if !bus.Sleep(ctx, 200*time.Millisecond) {
			return fmt.Errorf("waiting for aggregate to finish the enriched topic: %w", ctx.Err())
		}
	}
}
