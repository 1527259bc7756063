package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func load(t *testing.T, args []string) (Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return Load(fs)
}

func TestExampleConfigLoadsAndValidates(t *testing.T) {
	c, err := load(t, []string{"--config", "../../deploy/aivis.example.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Aggregate.Window != time.Minute || len(c.Kafka.Brokers) != 0 || len(c.Ingest.Producers) != 1 {
		t.Fatalf("example not applied: %+v", c)
	}
}

func TestPrecedenceDefaultsFileEnvFlags(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte("aggregate:\n  allowed_lateness: 2m\n  window: 5m\nclickhouse:\n  database: fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AIVIS_AGGREGATE__ALLOWED_LATENESS", "3m")
	t.Setenv("AIVIS_CLICKHOUSE__DATABASE", "fromenv")
	c, err := load(t, []string{"--config", path, "--clickhouse.database", "fromflag"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Aggregate.Window != 5*time.Minute {
		t.Errorf("window = %s, want 5m from the file", c.Aggregate.Window)
	}
	if c.Aggregate.AllowedLateness != 3*time.Minute {
		t.Errorf("allowed_lateness = %s, want 3m from the environment", c.Aggregate.AllowedLateness)
	}
	if c.ClickHouse.Database != "fromflag" {
		t.Errorf("database = %q, want the flag's", c.ClickHouse.Database)
	}
	if c.Aggregate.FlushInterval != time.Second {
		t.Errorf("flush_interval = %s, want the default", c.Aggregate.FlushInterval)
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("aggregate:\n  windw: 5m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := load(t, []string{"--config", path})
	if err == nil || !strings.Contains(err.Error(), "windw") {
		t.Fatalf("err = %v, want it to name the unknown key", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Kafka.Partitions = 0
	c.Kafka.Compression = "zstandard"
	c.Aggregate.Window = 7 * time.Minute
	c.LogLevel = "loud"
	err := c.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, key := range []string{"kafka.partitions", "kafka.compression", "aggregate.window", "log_level"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
}

// TestEventTimeRangeFitsTheAggregator: ingest may only accept event times
// that the aggregator counts, or a 202 could end in a dead letter.
func TestEventTimeRangeFitsTheAggregator(t *testing.T) {
	base := Default()
	base.Ingest.AllowAnonymous = true
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name string
		set  func(c *Config)
		want string // "" when valid
	}{
		{"skew above max_future", func(c *Config) { c.Ingest.MaxClockSkew = 15 * time.Minute }, "ingest.max_clock_skew: 15m0s is more than aggregate.max_future 10m0s"},
		{"age beyond the late horizon", func(c *Config) { c.Ingest.MaxEventAge = 24 * time.Hour }, "lower it to at most 23h50m0s"},
		{"shorter late horizon", func(c *Config) { c.Aggregate.LateHorizon = 6 * time.Hour }, "ingest.max_event_age: 23h0m0s plus aggregate.max_future 10m0s is more than aggregate.late_horizon 6h0m0s"},
		{"both raised together", func(c *Config) { c.Aggregate.LateHorizon, c.Ingest.MaxEventAge = 72*time.Hour, 71*time.Hour }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.set(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if tt.want != "" && c.ValidateWithoutIngest() != nil {
				t.Errorf("a process without ingest need not care: %v", c.ValidateWithoutIngest())
			}
		})
	}
}

func TestGPUCostAndComparables(t *testing.T) {
	c, err := load(t, []string{"--config", "../../deploy/aivis.example.yaml", "--self_hosted.comparables", "a=openai/gpt-4o-mini,b=anthropic/claude-haiku-4-5",
		"--gpu_cost.energy_usd_per_kwh", "0.12", "--gpu_cost.grid_gco2_per_kwh", "380"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if e, g := c.GPUCost.Settings(); e != 0.12 || g != 380 {
		t.Errorf("gpu_cost settings = %g, %g", e, g)
	}
	m, err := c.SelfHosted.ComparableModels()
	if err != nil || len(m) != 2 || m["b"] != "anthropic/claude-haiku-4-5" {
		t.Errorf("comparables = %v, %v", m, err)
	}
	t.Setenv("AIVIS_GPU_COST__ENERGY_USD_PER_KWH", "cheap")
	c, err = load(t, []string{"--self_hosted.comparables", "a=gpt-4o,a=openai/x,b=openai/y,b=openai/z"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.ValidateWithoutIngest()
	for _, want := range []string{"gpu_cost.energy_usd_per_kwh", "self_hosted.comparables[0]", "self_hosted.comparables[3]: deployment \"b\" is listed twice"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validation error %v does not name %s", err, want)
		}
	}
}
