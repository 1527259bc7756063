// Package config loads aivis's configuration: built-in defaults, then an
// optional YAML file, then AIVIS_ environment variables, then command-line
// flags, each overriding the one before. Decoding is strict (an unknown key
// is an error) and Validate reports every problem at once with its key path.
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
	"github.com/aivis-dev/aivis/enrich"
	"github.com/aivis-dev/aivis/ingest"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// Config is the whole configuration of every aivis command.
type Config struct {
	Kafka       Kafka            `koanf:"kafka"`
	Ingest      ingest.Config    `koanf:"ingest"`
	Enrich      enrich.Config    `koanf:"enrich"`
	Aggregate   aggregate.Config `koanf:"aggregate"`
	ClickHouse  chsink.Config    `koanf:"clickhouse"`
	MetricsAddr string           `koanf:"metrics_addr"`
	LogLevel    string           `koanf:"log_level"`
}

// Kafka says where the brokers are. No brokers means: `aivis dev` starts an
// embedded in-process cluster; other commands refuse to start.
type Kafka struct {
	Brokers    []string `koanf:"brokers"`
	ClientID   string   `koanf:"client_id"`
	Partitions int32    `koanf:"partitions"`
	// Replication is the replication factor used when aivis creates topics.
	Replication int16 `koanf:"replication"`
	// CreateTopics lets each stage create the topics it needs when they are
	// missing. Off, a missing topic is reported (with the command that
	// creates it) and the stage waits, not ready.
	CreateTopics bool `koanf:"create_topics"`
}

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		Kafka:       Kafka{ClientID: "aivis", Partitions: 6, Replication: 1, CreateTopics: true},
		Ingest:      ingest.DefaultConfig(),
		Enrich:      enrich.DefaultConfig(),
		Aggregate:   aggregate.DefaultConfig(),
		ClickHouse:  chsink.DefaultConfig(),
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
	for i, b := range c.Kafka.Brokers {
		if !strings.Contains(b, ":") {
			errs = append(errs, fmt.Errorf("kafka.brokers[%d]: %q must be host:port", i, b))
		}
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level: %q must be debug, info, warn or error", c.LogLevel))
	}
	checks := []error{c.Enrich.Validate(), c.Aggregate.Validate(), c.ClickHouse.Validate()}
	if withIngest {
		checks = append(checks, c.Ingest.Validate())
	}
	for _, err := range checks {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Flags registers the flags every command shares. Only flags the user set
// override the file and the environment.
func Flags(fs *pflag.FlagSet) {
	defer func() {
		fs.VisitAll(func(f *pflag.Flag) { _ = fs.SetAnnotation(f.Name, configFlag, []string{"true"}) })
	}()
	fs.StringP("config", "c", "", "YAML configuration file")
	fs.StringSlice("kafka.brokers", nil, "Kafka seed brokers host:port (none: embedded cluster in `aivis dev`)")
	fs.String("clickhouse.addr", "", "ClickHouse native-protocol address host:port")
	fs.String("clickhouse.database", "", "ClickHouse database")
	fs.String("metrics_addr", "", "address serving /metrics, /healthz and /readyz (empty string disables)")
	fs.String("ingest.listen_addr", "", "address of the ingest HTTP API")
	fs.String("log_level", "", "debug, info, warn or error")
}

// configFlag marks the flags that set configuration keys; a command's own
// flags (e.g. verify --from) are not configuration.
const configFlag = "aivis-config"

// EnvPrefix is the prefix of environment overrides. A double underscore
// separates levels: AIVIS_AGGREGATE__ALLOWED_LATENESS=2m sets
// aggregate.allowed_lateness.
const EnvPrefix = "AIVIS_"

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
	if err := k.Load(env.Provider(".", env.Opt{
		Prefix: EnvPrefix,
		TransformFunc: func(key, value string) (string, any) {
			key = strings.ToLower(strings.TrimPrefix(key, EnvPrefix))
			key = strings.ReplaceAll(key, "__", ".")
			if key == "kafka.brokers" {
				return key, strings.Split(value, ",")
			}
			return key, value
		},
	}), nil); err != nil {
		return Config{}, fmt.Errorf("reading %s environment variables: %w", EnvPrefix, err)
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
