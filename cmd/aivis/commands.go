package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/enrich"
	"github.com/aivis-dev/aivis/gpuprobe"
	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/loadgen"
	"github.com/aivis-dev/aivis/internal/obs"
	"github.com/aivis-dev/aivis/internal/report"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

func requireBrokers(e *env) error {
	if len(e.cfg.Kafka.Brokers) == 0 {
		return errors.New("no Kafka brokers configured: set kafka.brokers (flag --kafka.brokers, env AIVIS_KAFKA__BROKERS), or use `aivis dev` for an embedded cluster")
	}
	return nil
}

// serveWith runs the stage next to the ops endpoints; the stage's return
// ends both.
func serveWith(ctx context.Context, e *env, ready *obs.Readiness, stage func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return obs.Serve(gctx, e.cfg.MetricsAddr, ready, e.log) })
	g.Go(func() error { defer cancel(); return stage(gctx) })
	return g.Wait()
}

func runIngest(ctx context.Context, e *env) error {
	if err := requireBrokers(e); err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(bus.Opts(e.cfg.Kafka.Brokers, e.cfg.Kafka.ClientID+"-ingest"), ingest.ClientOptions(e.cfg.Ingest)...)...)
	if err != nil {
		return fmt.Errorf("creating the Kafka producer: %w", err)
	}
	defer cl.Close()
	srv, err := ingest.New(e.cfg.Ingest, cl, obs.Registry, e.log)
	if err != nil {
		return err
	}
	ready := obs.NewReadiness()
	ready.Add("kafka", func() error { return cl.Ping(context.Background()) })
	return serveWith(ctx, e, ready, srv.Run)
}

func runEnrich(ctx context.Context, e *env) error {
	if err := requireBrokers(e); err != nil {
		return err
	}
	enricher, err := enrich.Load(e.cfg.Enrich)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(enrich.ConsumerOpts(e.cfg.Kafka.Brokers), kgo.ClientID(e.cfg.Kafka.ClientID+"-enrich"))...)
	if err != nil {
		return fmt.Errorf("creating the Kafka client: %w", err)
	}
	defer cl.Close()
	stage := enrich.NewStage(cl, enricher, e.log)
	return serveWith(ctx, e, obs.NewReadiness(), func(ctx context.Context) error {
		go func() { _ = stage.Watch(ctx, e.cfg.Enrich) }()
		return stage.Run(ctx)
	})
}

func runAggregate(ctx context.Context, e *env) error {
	if err := requireBrokers(e); err != nil {
		return err
	}
	store, err := chsink.Open(ctx, e.cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	stage, err := aggregate.NewStage(e.cfg.Aggregate, e.cfg.Aggregate.Topic, bus.Opts(e.cfg.Kafka.Brokers, e.cfg.Kafka.ClientID+"-aggregate"), store, e.log)
	if err != nil {
		return err
	}
	ready := obs.NewReadiness()
	ready.Add("sink", stage.Ready)
	return serveWith(ctx, e, ready, func(ctx context.Context) error {
		if e.cfg.Aggregate.ScoreAnomalies {
			alertCl, err := kgo.NewClient(bus.Opts(e.cfg.Kafka.Brokers, e.cfg.Kafka.ClientID+"-alerts")...)
			if err != nil {
				return fmt.Errorf("creating the alerts Kafka client: %w", err)
			}
			defer alertCl.Close()
			scorer := aggregate.NewScorer(e.cfg.Aggregate.Anomaly, e.cfg.Aggregate.Window, store, e.log.With("stage", "anomaly"))
			scorer.PublishTo(aggregate.KafkaAlerts{Client: alertCl, Topic: schemas.TopicAlerts})
			go func() { _ = scorer.Run(ctx) }()
		}
		return stage.Run(ctx)
	})
}

func runMigrate(ctx context.Context, e *env) error {
	store, err := chsink.Open(ctx, e.cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer store.Close()
	applied, err := store.Migrate(ctx)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(e.out, "ClickHouse %s, database %s: schema is up to date\n", store.ServerVersion(), e.cfg.ClickHouse.Database)
		return nil
	}
	fmt.Fprintf(e.out, "ClickHouse %s, database %s: applied migrations %v\n", store.ServerVersion(), e.cfg.ClickHouse.Database, applied)
	return nil
}

func gpuprobeFlags(fs *pflag.FlagSet) {
	fs.Duration("interval", 10*time.Second, "sampling interval")
	fs.Bool("once", false, "print one snapshot as JSON lines and exit")
}

func runGPUProbe(ctx context.Context, e *env) error {
	probe, err := gpuprobe.OpenSystem(e.log)
	if err != nil {
		return err
	}
	defer probe.Close()
	interval, _ := e.fs.GetDuration("interval")
	once, _ := e.fs.GetBool("once")
	if once {
		return gpuprobe.PrintSnapshot(probe, e.out)
	}
	var emit func([]schemas.Event) error
	if len(e.cfg.Kafka.Brokers) > 0 {
		cl, err := kgo.NewClient(bus.Opts(e.cfg.Kafka.Brokers, e.cfg.Kafka.ClientID+"-gpuprobe")...)
		if err != nil {
			return fmt.Errorf("creating the Kafka producer: %w", err)
		}
		defer cl.Close()
		emit = func(evs []schemas.Event) error { return gpuprobe.Produce(ctx, cl, evs) }
	} else {
		emit = func(evs []schemas.Event) error { return gpuprobe.WriteJSON(e.out, evs) }
	}
	return serveWith(ctx, e, obs.NewReadiness(), func(ctx context.Context) error { return probe.Run(ctx, interval, emit) })
}

func loadgenFlags(fs *pflag.FlagSet) {
	d := loadgen.DefaultConfig()
	fs.Float64("rate", d.Rate, "events per second")
	fs.Duration("duration", time.Minute, "how long to send (0: until interrupted)")
	fs.Int64("seed", 1, "random seed (same seed, same events)")
	fs.Float64("time-scale", 1, "event seconds per wall second (60 replays an hour in a minute)")
	fs.String("url", "http://127.0.0.1:8080/v1/events", "ingest endpoint")
	fs.String("token", os.Getenv("AIVIS_TOKEN"), "ingest bearer token (env AIVIS_TOKEN)")
	fs.Bool("kafka", false, "produce straight to the raw topic on kafka.brokers instead of HTTP")
}

func loadgenConfig(fs *pflag.FlagSet) loadgen.Config {
	c := loadgen.DefaultConfig()
	c.Rate, _ = fs.GetFloat64("rate")
	c.Duration, _ = fs.GetDuration("duration")
	c.Seed, _ = fs.GetInt64("seed")
	c.TimeScale, _ = fs.GetFloat64("time-scale")
	return c
}

func runLoadgen(ctx context.Context, e *env) error {
	c := loadgenConfig(e.fs)
	if err := c.Validate(); err != nil {
		return err
	}
	var sink loadgen.Sink
	if useKafka, _ := e.fs.GetBool("kafka"); useKafka {
		if err := requireBrokers(e); err != nil {
			return err
		}
		cl, err := kgo.NewClient(bus.Opts(e.cfg.Kafka.Brokers, e.cfg.Kafka.ClientID+"-loadgen")...)
		if err != nil {
			return fmt.Errorf("creating the Kafka producer: %w", err)
		}
		defer cl.Close()
		sink = &loadgen.KafkaSink{Client: cl, Topic: schemas.TopicRaw}
	} else {
		url, _ := e.fs.GetString("url")
		token, _ := e.fs.GetString("token")
		sink = &loadgen.HTTPSink{URL: url, Token: token, Client: &http.Client{Timeout: 30 * time.Second}}
	}
	stats, err := loadgen.Run(ctx, c, sink, progressPrinter(e))
	fmt.Fprintf(e.out, "sent %d events (%d distinct, %d duplicates, %d malformed, %d late) in %s\n",
		stats.Sent, stats.Distinct(), stats.Duplicates, stats.Malformed, stats.Late, stats.Elapsed.Round(time.Millisecond))
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func progressPrinter(e *env) func(loadgen.Stats) {
	last := time.Now()
	return func(s loadgen.Stats) {
		if time.Since(last) < 5*time.Second {
			return
		}
		last = time.Now()
		fmt.Fprintf(e.out, "  … %s: %d events sent (%d duplicates, %d malformed)\n", s.Elapsed.Round(time.Second), s.Sent, s.Duplicates, s.Malformed)
	}
}

func reportFlags(fs *pflag.FlagSet) {
	fs.String("format", "table", "table, json or csv")
	fs.Duration("since", 24*time.Hour, "length of the range (e.g. 1h, 24h)")
	fs.Int("limit", 10, "rows per top list")
}

func reportOptions(fs *pflag.FlagSet) (report.Options, error) {
	var o report.Options
	o.Format, _ = fs.GetString("format")
	o.Since, _ = fs.GetDuration("since")
	o.Limit, _ = fs.GetInt("limit")
	switch o.Format {
	case "table", "json", "csv":
	default:
		return o, fmt.Errorf("--format %q: want table, json or csv", o.Format)
	}
	return o, nil
}

func runReport(ctx context.Context, e *env) error {
	opts, err := reportOptions(e.fs)
	if err != nil {
		return err
	}
	store, err := chsink.Open(ctx, e.cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer store.Close()
	return report.Report(ctx, store, opts, e.out)
}

func printFlags(fs *pflag.FlagSet) {
	fs.Bool("print", false, "print the effective configuration as YAML")
}

func runConfigValidate(_ context.Context, e *env) error {
	if p, _ := e.fs.GetBool("print"); p {
		if err := printConfig(e.out, e.cfg); err != nil {
			return err
		}
	}
	fmt.Fprintln(e.out, "configuration is valid")
	return nil
}

func runToken(_ context.Context, e *env) error {
	t := ingest.NewToken()
	fmt.Fprintf(e.out, "token (give to the producer; it is not stored): %s\n", t)
	fmt.Fprintf(e.out, "add to the ingest config:\n  producers:\n    - name: my-gateway\n      token_sha256: %s\n", ingest.HashToken(t))
	return nil
}
