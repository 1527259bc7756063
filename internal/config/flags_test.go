package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestConfigEveryKeyIsAFlagOrListed walks Config: every key has a usage
// text, and is either a flag with the built-in default or named, with its
// environment variable, in the help footer for keys that cannot be flags.
func TestConfigEveryKeyIsAFlagOrListed(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	Flags(fs)
	footer := NotFlagsUsage()
	all := keys()
	if len(all) < 50 {
		t.Fatalf("found %d keys; the walk over Config's koanf tags is missing some", len(all))
	}
	for _, k := range all {
		if k.help == "" {
			t.Errorf("%s has no help tag", k.path)
		}
		if strings.Contains(k.help, "`") {
			t.Errorf("%s: help %q has a backquote, which pflag would show as the argument name", k.path, k.help)
		}
		f := fs.Lookup(k.path)
		if !k.flag() {
			if f != nil {
				t.Errorf("%s is a flag but cannot be one", k.path)
			}
			if !strings.Contains(footer, k.path+" (environment: "+k.env()+")") {
				t.Errorf("the footer does not list %s with %s:\n%s", k.path, k.env(), footer)
			}
			continue
		}
		if f == nil {
			t.Errorf("%s is not a flag", k.path)
			continue
		}
		if !IsConfigFlag(f) {
			t.Errorf("--%s is not marked as a configuration flag", k.path)
		}
		if f.Usage != k.help {
			t.Errorf("--%s usage = %q, want the help tag %q", k.path, f.Usage, k.help)
		}
	}
	for _, want := range []string{"kafka.brokers", "aggregate.instance_id", "aggregate.anomaly.alpha", "clickhouse.password", "log_level"} {
		if fs.Lookup(want) == nil {
			t.Errorf("no flag --%s", want)
		}
	}
	if !strings.Contains(footer, "ingest.producers (environment: AIVIS_INGEST__PRODUCERS)") || !strings.Contains(footer, "--config") {
		t.Errorf("footer does not say how to set ingest.producers:\n%s", footer)
	}
}

// TestConfigFlagDefaultsAreTheDefaults: loading with no file, environment
// or flags gives Default(), and each flag shows its key's default.
func TestConfigFlagDefaultsAreTheDefaults(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Printed, since decoding makes empty lists of nil ones.
	if got, want := fmt.Sprintf("%+v", c), fmt.Sprintf("%+v", Default()); got != want {
		t.Fatalf("loaded %s\nwant the defaults %s", got, want)
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	Flags(fs)
	for path, want := range map[string]string{
		"aggregate.window":        "1m0s",
		"aggregate.anomaly.alpha": "0.02",
		"kafka.partitions":        "6",
		"kafka.brokers":           "[]",
		"clickhouse.addr":         "127.0.0.1:9000",
		"ingest.allow_anonymous":  "false",
		"aggregate.instance_id":   "",
	} {
		if got := fs.Lookup(path).DefValue; got != want {
			t.Errorf("--%s default = %q, want %q", path, got, want)
		}
	}
}

// TestConfigFlagsOfEveryType sets a key of each type by flag, over a file
// that sets them too, and checks that only the flags that were given
// override the file.
func TestConfigFlagsOfEveryType(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	file := "aggregate:\n  instance_id: fromfile\n  group: fromfile\n  score_anomalies: false\nkafka:\n  partitions: 3\n"
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load(t, []string{"--config", path,
		"--aggregate.instance_id", "replica-1",
		"--aggregate.anomaly.alpha=0.25",
		"--aggregate.anomaly.min_impact_picos=7",
		"--aggregate.window", "5m",
		"--aggregate.score_anomalies",
		"--kafka.brokers", "a:9092,b:9092", "--kafka.brokers", "c:9092",
		"--kafka.replication", "3",
		"--ingest.default_rate_events_per_second", "12.5",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Aggregate.InstanceID != "replica-1" || c.Aggregate.Group != "fromfile" {
		t.Errorf("instance_id %q, group %q: want the flag's and the file's", c.Aggregate.InstanceID, c.Aggregate.Group)
	}
	if c.Aggregate.Anomaly.Alpha != 0.25 || c.Aggregate.Anomaly.MinImpactPicos != 7 || c.Aggregate.Window != 5*time.Minute {
		t.Errorf("anomaly %+v, window %s", c.Aggregate.Anomaly, c.Aggregate.Window)
	}
	if !c.Aggregate.ScoreAnomalies {
		t.Error("score_anomalies: the flag did not override the file's false")
	}
	if !reflect.DeepEqual(c.Kafka.Brokers, []string{"a:9092", "b:9092", "c:9092"}) || c.Kafka.Replication != 3 || c.Kafka.Partitions != 3 {
		t.Errorf("kafka = %+v", c.Kafka)
	}
	if c.Ingest.DefaultRateEventsPerSecond != 12.5 {
		t.Errorf("default_rate_events_per_second = %v", c.Ingest.DefaultRateEventsPerSecond)
	}
}

// TestConfigListOfStructsFromEnvironment: keys that cannot be flags are
// JSON in their environment variable, as the help footer says.
func TestConfigListOfStructsFromEnvironment(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	t.Setenv("AIVIS_INGEST__PRODUCERS", `[{"name":"gw","token_sha256":"`+hash+`","rate_events_per_second":2,"burst_events":5}]`)
	t.Setenv("AIVIS_KAFKA__BROKERS", "a:9092, b:9092")
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Ingest.Producers) != 1 || c.Ingest.Producers[0].Name != "gw" || c.Ingest.Producers[0].TokenSHA256 != hash || c.Ingest.Producers[0].BurstEvents != 5 {
		t.Errorf("producers = %+v", c.Ingest.Producers)
	}
	if !reflect.DeepEqual(c.Kafka.Brokers, []string{"a:9092", "b:9092"}) {
		t.Errorf("brokers = %q", c.Kafka.Brokers)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}

	t.Setenv("AIVIS_INGEST__PRODUCERS", `name: gw`)
	_, err = load(t, nil)
	if err == nil || !strings.Contains(err.Error(), "AIVIS_INGEST__PRODUCERS") || !strings.Contains(err.Error(), "JSON") {
		t.Errorf("err = %v, want it to name the variable and ask for JSON", err)
	}
}
