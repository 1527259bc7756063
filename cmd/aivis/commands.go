package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/gpuprobe"
	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/config"
	"github.com/aivis-dev/aivis/internal/loadgen"
	"github.com/aivis-dev/aivis/internal/pipeline"
	"github.com/aivis-dev/aivis/internal/security"
	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/report"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

func requireBrokers(e *env) error {
	if len(e.cfg.Kafka.Brokers) == 0 {
		return errors.New("no Kafka brokers configured: set kafka.brokers (flag --kafka.brokers, env AIVIS_KAFKA__BROKERS), or use `aivis dev` for an embedded cluster")
	}
	return nil
}

// runStages builds the given stages through the one builder and runs them
// until a signal, or until one of them fails.
func runStages(ctx context.Context, e *env, opts pipeline.Options) error {
	opts.Log = e.log
	applyMemoryLimit(e)
	p, err := pipeline.Build(ctx, e.cfg, opts)
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Run(ctx)
}

// applyMemoryLimit sets the Go runtime's soft memory limit from
// memory_limit_mib; 0 leaves GOMEMLIMIT (or no limit) in place.
func applyMemoryLimit(e *env) {
	if mib := e.cfg.MemoryLimitMiB; mib > 0 {
		debug.SetMemoryLimit(mib << 20)
		e.log.Info("soft memory limit set", "memory_limit_mib", mib)
	}
}

func runIngest(ctx context.Context, e *env) error {
	return runStages(ctx, e, pipeline.Options{Stages: []pipeline.Stage{pipeline.Ingest}})
}

func runEnrich(ctx context.Context, e *env) error {
	return runStages(ctx, e, pipeline.Options{Stages: []pipeline.Stage{pipeline.Enrich}})
}

func runAggregate(ctx context.Context, e *env) error {
	stages := []pipeline.Stage{pipeline.Aggregate}
	if e.cfg.Aggregate.ScoreAnomalies {
		stages = append(stages, pipeline.Anomaly)
	}
	return runStages(ctx, e, pipeline.Options{Stages: stages})
}

// runScore runs the anomaly scorer and its alert delivery alone, for
// layouts that keep them out of the aggregator replicas.
func runScore(ctx context.Context, e *env) error {
	return runStages(ctx, e, pipeline.Options{Stages: []pipeline.Stage{pipeline.Anomaly}})
}

func migrateFlags(fs *pflag.FlagSet) {
	fs.Bool("topics", true, "also create the Kafka topics (when kafka.brokers is set)")
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
	// The GPU views' constants are a side duty: a shard that is down (in
	// cluster mode) must not make a schema that is up to date fail. The
	// next migrate or aggregate start writes them again.
	energy, grid := e.cfg.GPUCost.Settings()
	if err := store.WriteGPUSettings(ctx, energy, grid); err != nil {
		e.log.Warn("writing gpu_cost to gpu_settings failed; the GPU views keep the previous values until the next migrate or aggregate start", "err", err)
	}
	if len(applied) == 0 {
		fmt.Fprintf(e.out, "ClickHouse %s, database %s: schema is up to date\n", store.ServerVersion(), e.cfg.ClickHouse.Database)
	} else {
		fmt.Fprintf(e.out, "ClickHouse %s, database %s: applied migrations %v\n", store.ServerVersion(), e.cfg.ClickHouse.Database, applied)
	}
	if topics, _ := e.fs.GetBool("topics"); !topics || len(e.cfg.Kafka.Brokers) == 0 {
		return nil
	}
	return migrateTopics(ctx, e)
}

// migrateTopics creates every aivis topic that is missing.
func migrateTopics(ctx context.Context, e *env) error {
	d, err := e.cfg.Kafka.Dialer()
	if err != nil {
		return err
	}
	adm, err := d.Admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	topics := bus.Topics
	if e.cfg.Aggregate.Topic != schemas.TopicEnriched {
		topics = append(slices.Clone(topics), e.cfg.Aggregate.Topic)
	}
	plan := bus.TopicPlan{Topics: topics, Partitions: e.cfg.Kafka.Partitions, Replication: e.cfg.Kafka.Replication, Create: true}
	st, err := bus.Ensure(ctx, adm, d.Brokers, plan)
	for _, w := range st.Warnings {
		fmt.Fprintf(e.out, "warning: %s\n", w)
	}
	if err != nil {
		return err
	}
	if len(st.Created) > 0 {
		fmt.Fprintf(e.out, "Kafka %v: created topics %v (%d partitions, replication %d)\n", d.Brokers, st.Created, plan.Partitions, plan.Replication)
	} else {
		fmt.Fprintf(e.out, "Kafka %v: topics exist\n", d.Brokers)
	}
	return nil
}

func gpuprobeFlags(fs *pflag.FlagSet) {
	fs.Duration("interval", 0, "sampling interval (overrides gpuprobe.sample_interval; 0 keeps it)")
	fs.Bool("once", false, "print one snapshot as JSON lines and exit")
}

func runGPUProbe(ctx context.Context, e *env) error {
	interval, _ := e.fs.GetDuration("interval")
	if once, _ := e.fs.GetBool("once"); once {
		probe, err := gpuprobe.OpenSystem(e.cfg.GPUProbe, nil, e.log)
		if err != nil {
			return err
		}
		defer probe.Close()
		return gpuprobe.PrintSnapshot(probe, e.out)
	}
	return runStages(ctx, e, pipeline.Options{Stages: []pipeline.Stage{pipeline.GPUProbe},
		GPU: pipeline.GPUOptions{Interval: interval, Out: e.out}})
}

func loadgenFlags(fs *pflag.FlagSet) {
	trafficFlags(fs)
	fs.String("url", "http://127.0.0.1:8080/v1/events", "ingest endpoint")
	fs.String("token", "", "ingest bearer token, as printed by aivis token")
	fs.String("ca-file", "", "PEM CA that signed ingest's certificate, for an https --url with a private CA")
	fs.Bool("kafka", false, "produce straight to the raw topic on kafka.brokers instead of HTTP")
	progressFlag(fs)
}

// trafficFlags shape the generated traffic; aivis dev shares them.
func trafficFlags(fs *pflag.FlagSet) {
	d := loadgen.DefaultConfig()
	fs.Float64("rate", d.Rate, "events per second")
	fs.Duration("duration", time.Minute, "how long to send (0: until interrupted)")
	fs.Int64("seed", 1, "random seed (same seed, same events)")
	fs.Float64("time-scale", 1, "event seconds per wall second (60 replays an hour in a minute)")
	fs.String("scenario", "", "stage one incident for the detector and the alerts: "+strings.Join(loadgen.Scenarios, ", ")+" (empty: none; bursts: a 5× surge of one team on one model every 2 hours)")
	fs.Bool("gpu", false, "also simulate a GPU host (four H100s: a vLLM deployment's two replicas, a shared training GPU, an idle one) whose gpu.usage and serving token events go with the traffic")
	fs.Duration("scenario-at", 0, "when the scenario starts, in event time after the run's start (0: halfway through the run)")
	fs.StringSlice("savings-scenario", nil, "add the fixed traffic of savings scenarios, comma-separated: "+strings.Join(loadgen.SavingsScenarios, ", ")+" (docs/savings.md)")
}

func loadgenConfig(fs *pflag.FlagSet) loadgen.Config {
	c := loadgen.DefaultConfig()
	c.Rate, _ = fs.GetFloat64("rate")
	c.Duration, _ = fs.GetDuration("duration")
	c.Seed, _ = fs.GetInt64("seed")
	c.TimeScale, _ = fs.GetFloat64("time-scale")
	c.Scenario, _ = fs.GetString("scenario")
	c.ScenarioAt, _ = fs.GetDuration("scenario-at")
	c.GPU, _ = fs.GetBool("gpu")
	c.SavingsScenarios, _ = fs.GetStringSlice("savings-scenario")
	return c
}

func runLoadgen(ctx context.Context, e *env) error {
	c := loadgenConfig(e.fs)
	if err := c.Validate(); err != nil {
		return err
	}
	var sink loadgen.Sink
	target := ""
	if useKafka, _ := e.fs.GetBool("kafka"); useKafka {
		if err := requireBrokers(e); err != nil {
			return err
		}
		d, err := e.cfg.Kafka.Dialer()
		if err != nil {
			return err
		}
		cl, err := d.Producer("loadgen")
		if err != nil {
			return err
		}
		defer cl.Close()
		sink = &loadgen.KafkaSink{Client: cl, Topic: schemas.TopicRaw}
		target = "Kafka topic " + schemas.TopicRaw
	} else {
		url, _ := e.fs.GetString("url")
		token, _ := e.fs.GetString("token")
		caFile, _ := e.fs.GetString("ca-file")
		tc, err := security.ClientTLS{CAFile: caFile}.Config("--ca-file")
		if err != nil {
			return err
		}
		client := &http.Client{Timeout: 30 * time.Second}
		if tc != nil {
			client.Transport = &http.Transport{TLSClientConfig: tc}
		}
		sink = &loadgen.HTTPSink{URL: url, Token: token, Client: client}
		target = url
	}
	if sc, ok := loadgen.PlanScenario(c); ok {
		fmt.Fprintln(e.out, sc)
	}
	meter := startProgress(e, "loadgen")
	var total int64
	if c.Duration > 0 {
		total = int64(c.Rate * c.Duration.Seconds())
	}
	meter.Phase("sending", "events", total)
	stats, err := loadgen.Run(ctx, c, sink, func(s loadgen.Stats) { meter.Set(s.Sent) })
	meter.Stop()
	fmt.Fprintln(e.out, loadgenSummary(stats, target))
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func reportFlags(fs *pflag.FlagSet) {
	fs.String("format", "table", "table, json or csv")
	fs.Duration("since", 24*time.Hour, "length of the range (e.g. 1h, 24h)")
	fs.Int("limit", 10, "rows per top list")
}

// reportOptions reads the report flags, and from the configuration the
// self-hosted comparables with the catalog that prices them.
func reportOptions(fs *pflag.FlagSet, cfg config.Config) (report.Options, error) {
	var o report.Options
	var err error
	if o.Comparables, err = cfg.SelfHosted.ComparableModels(); err != nil {
		return o, err
	}
	if len(o.Comparables) > 0 {
		if o.Catalog, err = pricing.Load(cfg.Enrich.CatalogPath, cfg.Enrich.ContractsPath); err != nil {
			return o, fmt.Errorf("loading the catalog that prices self_hosted.comparables: %w", err)
		}
	}
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
	opts, err := reportOptions(e.fs, e.cfg)
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
