// Package config loads aivis's configuration: built-in defaults, then an
// optional YAML file, then AIVIS_ environment variables, then command-line
// flags, each overriding the one before. Decoding is strict (an unknown key,
// or an AIVIS_ variable that is no key, is an error) and Validate reports
// every problem at once with its key path.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/aggregate"
	"github.com/aivis-dev/aivis/alerts"
	"github.com/aivis-dev/aivis/budget"
	"github.com/aivis-dev/aivis/enrich"
	"github.com/aivis-dev/aivis/governance"
	"github.com/aivis-dev/aivis/gpuprobe"
	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/security"
	"github.com/aivis-dev/aivis/savings"
	"github.com/aivis-dev/aivis/serving"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// Config is the whole configuration of every aivis command.
type Config struct {
	Kafka      Kafka            `koanf:"kafka"`
	Ingest     ingest.Config    `koanf:"ingest"`
	Enrich     enrich.Config    `koanf:"enrich"`
	Aggregate  aggregate.Config `koanf:"aggregate"`
	ClickHouse chsink.Config    `koanf:"clickhouse"`
	GPUProbe   gpuprobe.Config  `koanf:"gpuprobe"`
	// Serving configures aivis serving, which scrapes inference servers.
	Serving serving.Config `koanf:"serving"`
	// Budget configures the budget evaluator, which runs with aggregate.
	Budget budget.Config `koanf:"budget"`
	// Governance configures the policy and the governance and security
	// signals, evaluated with aggregate.
	Governance governance.Config `koanf:"governance"`
	// Savings configures the savings recommendations: the rules of
	// `aivis report savings` and the daily recommender, which runs with
	// aggregate when a rules file is set.
	Savings savings.Config `koanf:"savings"`
	// Alerts configures the webhooks alerts are delivered to besides the
	// alerts topic.
	Alerts alerts.Config `koanf:"alerts"`
	// GPUCost holds the energy price and grid intensity of the GPU views.
	GPUCost GPUCost `koanf:"gpu_cost"`
	// SelfHosted configures the report's self-hosted section.
	SelfHosted  SelfHosted `koanf:"self_hosted"`
	MetricsAddr string     `koanf:"metrics_addr" help:"address serving /metrics, /healthz and /readyz (empty disables them)"`
	// Pprof is off by default: profiles expose internals and cost CPU
	// while taken, so an operator turns them on for a diagnosis only.
	Pprof    bool   `koanf:"pprof" help:"also serve Go's /debug/pprof/ profiles on metrics_addr"`
	LogLevel string `koanf:"log_level" help:"debug, info, warn or error"`
	// MemoryLimitMiB is a soft limit on the process's Go memory: above it
	// the garbage collector works harder rather than let the heap grow to
	// twice what is live. Set it below the container's limit (e.g. 80%).
	MemoryLimitMiB int64 `koanf:"memory_limit_mib" help:"soft limit of the process's Go memory in MiB, e.g. 80% of its container's limit (0: none, or GOMEMLIMIT)"`
}

// Kafka says where the brokers are. No brokers means: `aivis dev` starts an
// embedded in-process cluster; other commands refuse to start.
type Kafka struct {
	Brokers    []string `koanf:"brokers" help:"seed brokers host:port, comma-separated (none: aivis dev starts an embedded cluster, other commands refuse to start)"`
	ClientID   string   `koanf:"client_id" help:"prefix of the Kafka client ids; each stage appends its name (aivis-ingest)"`
	Partitions int32    `koanf:"partitions" help:"partitions of the topics aivis creates; an existing topic with fewer is warned about"`
	// Replication is the replication factor used when aivis creates topics.
	Replication int16 `koanf:"replication" help:"replication factor of the topics aivis creates"`
	// CreateTopics lets each stage create the topics it needs when they are
	// missing. Off, a missing topic is reported (with the command that
	// creates it) and the stage waits, not ready.
	CreateTopics bool `koanf:"create_topics" help:"let each stage create the topics it needs when missing (false: report them and wait, not ready)"`
	// Compression is the codec of every batch aivis produces. zstd makes
	// the enriched topic about a third smaller than snappy for about four
	// times the producer CPU (internal/bus.BenchmarkProduceCompression):
	// worth it where brokers, replicas and subscribers are paid per byte,
	// as across availability zones.
	Compression string `koanf:"compression" help:"codec of every batch aivis produces: snappy, lz4, zstd, gzip or none (every subscriber must decode it)"`
	// TLS and SASL to the brokers are used by every client of every
	// stage; production clusters usually want both (SASL_SSL).
	TLS  security.ClientTLS `koanf:"tls"`
	SASL bus.SASL           `koanf:"sasl"`
}

// Security returns the TLS and SASL settings of every Kafka client.
func (k Kafka) Security() bus.Security { return bus.Security{TLS: k.TLS, SASL: k.SASL} }

// Dialer returns the maker of every Kafka client of a process, with TLS
// and SASL as configured.
func (k Kafka) Dialer() (bus.Dialer, error) {
	d, err := bus.NewDialer(k.Brokers, k.ClientID, k.Security())
	d.Compression = k.Compression
	return d, err
}

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		Kafka:       Kafka{ClientID: "aivis", Partitions: 6, Replication: 1, CreateTopics: true, Compression: "snappy"},
		Ingest:      ingest.DefaultConfig(),
		Enrich:      enrich.DefaultConfig(),
		Aggregate:   aggregate.DefaultConfig(),
		ClickHouse:  chsink.DefaultConfig(),
		GPUProbe:    gpuprobe.DefaultConfig(),
		Serving:     serving.DefaultConfig(),
		Budget:      budget.DefaultConfig(),
		Governance:  governance.DefaultConfig(),
		Savings:     savings.DefaultConfig(),
		Alerts:      alerts.DefaultConfig(),
		GPUCost:     GPUCost{EnergyUSDPerKWh: "0"},
		MetricsAddr: "127.0.0.1:9464",
		LogLevel:    "info",
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error { return c.validate(true) }

// ValidateWithoutIngest is Validate for commands that do not serve the
// ingest API, so that its producer list need not be set for them.
func (c Config) ValidateWithoutIngest() error { return c.validate(false) }

func (c Config) validate(withIngest bool) error {
	var errs []error
	if c.Kafka.Partitions < 1 {
		errs = append(errs, fmt.Errorf("kafka.partitions: %d must be at least 1", c.Kafka.Partitions))
	}
	if c.Kafka.Replication < 1 {
		errs = append(errs, fmt.Errorf("kafka.replication: %d must be at least 1", c.Kafka.Replication))
	}
	if _, err := bus.Codec(c.Kafka.Compression); err != nil {
		errs = append(errs, err)
	}
	for i, b := range c.Kafka.Brokers {
		if !strings.Contains(b, ":") {
			errs = append(errs, fmt.Errorf("kafka.brokers[%d]: %q must be host:port", i, b))
		}
	}
	errs = append(errs, c.Kafka.Security().Validate()...)
	if c.MemoryLimitMiB < 0 {
		errs = append(errs, fmt.Errorf("memory_limit_mib: %d must not be negative (0 means no limit)", c.MemoryLimitMiB))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level: %q must be debug, info, warn or error", c.LogLevel))
	}
	checks := []error{c.Enrich.Validate(), c.Aggregate.Validate(), c.ClickHouse.Validate(), c.GPUProbe.Validate(), c.Serving.Validate(), c.Budget.Validate(), c.Governance.Validate(), c.Savings.Validate(), c.Alerts.Validate(),
		c.GPUCost.Validate(), c.SelfHosted.Validate()}
	if withIngest {
		checks = append(checks, c.Ingest.Validate(), c.eventTimeRange())
	}
	for _, err := range checks {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// eventTimeRange checks that every event time ingest accepts is one the
// aggregator counts: not further ahead than aggregate.max_future (or it is
// dead-lettered as future), and not older than the late horizon behind the
// newest watermark the aggregator allows (or it is dead-lettered as
// too_late). An event ingest answers 202 for must be counted.
func (c Config) eventTimeRange() error {
	var errs []error
	in, agg := c.Ingest, c.Aggregate
	if in.MaxClockSkew > agg.MaxFuture {
		errs = append(errs, fmt.Errorf("ingest.max_clock_skew: %s is more than aggregate.max_future %s, so events ingest accepts could be dead-lettered as future; lower it or raise aggregate.max_future",
			in.MaxClockSkew, agg.MaxFuture))
	}
	if in.MaxEventAge+agg.MaxFuture > agg.LateHorizon {
		errs = append(errs, fmt.Errorf("ingest.max_event_age: %s plus aggregate.max_future %s is more than aggregate.late_horizon %s, so events ingest accepts could be dead-lettered as too_late; lower it to at most %s or raise aggregate.late_horizon",
			in.MaxEventAge, agg.MaxFuture, agg.LateHorizon, agg.LateHorizon-agg.MaxFuture))
	}
	return errors.Join(errs...)
}

// Load builds the configuration from defaults, the file named by --config,
// the environment and the set flags. It does not validate.
func Load(fs *pflag.FlagSet) (Config, error) {
	k := koanf.New(".")
	if err := k.Load(structs.Provider(Default(), "koanf"), nil); err != nil {
		return Config{}, fmt.Errorf("loading defaults: %w", err)
	}
	path, _ := fs.GetString("config")
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return Config{}, fmt.Errorf("reading config file %q: %w", path, err)
		}
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return Config{}, fmt.Errorf("parsing config file %q: %w", path, err)
		}
	}
	envVars := newEnvReader()
	if err := k.Load(env.Provider(".", env.Opt{Prefix: EnvPrefix, TransformFunc: envVars.transform}), nil); err != nil {
		return Config{}, fmt.Errorf("reading %s environment variables: %w", EnvPrefix, err)
	}
	if err := envVars.err(); err != nil {
		return Config{}, err
	}
	if err := k.Load(posflag.ProviderWithFlag(fs, ".", k, func(f *pflag.Flag) (string, any) {
		if !f.Changed || f.Name == "config" || f.Annotations[configFlag] == nil {
			return "", nil
		}
		return f.Name, posflag.FlagVal(fs, f)
	}), nil); err != nil {
		return Config{}, fmt.Errorf("reading flags: %w", err)
	}
	var c Config
	err := k.UnmarshalWithConf("", &c, koanf.UnmarshalConf{
		Tag: "koanf",
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				mapstructure.StringToTimeDurationHookFunc(),
				mapstructure.StringToSliceHookFunc(","),
				mapstructure.TextUnmarshallerHookFunc(),
			),
			ErrorUnused:      true,
			WeaklyTypedInput: true,
			Result:           &c,
			TagName:          "koanf",
		},
	})
	if err != nil {
		return Config{}, fmt.Errorf("decoding configuration (check key names against `aivis config validate --print` and the example in deploy/aivis.example.yaml): %w", err)
	}
	return c, nil
}
