package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/capacity"
	"github.com/aivis-dev/aivis/capacity/sample"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

func capacityPlanFlags(fs *pflag.FlagSet) {
	d := capacity.DefaultDemand()
	fs.Float64Slice("events-per-second", nil, "average events per second to size for; several, comma-separated, print a column each (required)")
	fs.Float64("retention-days", 30, "days ClickHouse keeps events and windows")
	fs.Float64("kafka-retention-days", d.KafkaRetention.Hours()/24, "days the Kafka topics keep records")
	fs.Float64("headroom", d.Headroom, "capacity over the average rate, for peaks and catching up (2: stages run at half their capacity)")
	fs.Int("series", d.Series, "distinct (provider, model, team, project) series active in a minute")
	fs.Float64("cores-per-replica", d.CoresPerReplica, "CPU cores of one ingest, enrich or aggregate replica")
	fs.Int("min-replicas", d.MinReplicas, "fewest replicas of each stage")
	fs.Int("clickhouse-replicas", d.ClickHouseReplicas, "ClickHouse replicas per shard")
	fs.Float64("clickhouse-cores", d.ClickHouseCores, "CPU cores of one ClickHouse node")
	fs.Float64("clickhouse-disk-gib", d.ClickHouseDiskGiB, "usable disk of one ClickHouse node, GiB")
	fs.Int("kafka-replication", d.KafkaReplication, "Kafka replication factor of the topics")
	fs.Float64("kafka-disk-gib", d.KafkaDiskGiB, "usable disk of one Kafka broker, GiB")
	fs.Float64("disk-fill", d.DiskFill, "share of a disk to fill (0..1]")
	fs.Duration("dedup-horizon", 0, "how long the aggregator remembers an event id (0: aggregate.dedup_horizon)")
	fs.Float64("dedup-bytes-per-id", capacity.DefaultDedupBytesPerID, "aggregator memory per remembered event id, bytes (5: the compact dedup state; 40 to 80 for the fingerprint ring before it)")
	fs.String("benchmark", capacity.DefaultBenchmarkPath, "benchmark results (go run ./benchmarks/compare) with the per-core figures")
	fs.String("storage", capacity.DefaultStoragePath, "storage measurement (aivis capacity measure)")
	fs.String("format", "table", "table or json")
}

func runCapacityPlan(_ context.Context, e *env) error {
	rates, _ := e.fs.GetFloat64Slice("events-per-second")
	if len(rates) == 0 {
		return fmt.Errorf("--events-per-second is required (e.g. 1000,10000,100000)")
	}
	format, _ := e.fs.GetString("format")
	if format != "table" && format != "json" {
		return fmt.Errorf("--format %q: want table or json", format)
	}
	benchPath, _ := e.fs.GetString("benchmark")
	storagePath, _ := e.fs.GetString("storage")
	in, err := capacity.LoadInputs(benchPath, storagePath)
	if err != nil {
		return err
	}
	d := capacity.DefaultDemand()
	days := func(name string) time.Duration {
		v, _ := e.fs.GetFloat64(name)
		return time.Duration(v * 24 * float64(time.Hour))
	}
	d.Retention, d.KafkaRetention = days("retention-days"), days("kafka-retention-days")
	d.Headroom, _ = e.fs.GetFloat64("headroom")
	d.Series, _ = e.fs.GetInt("series")
	d.CoresPerReplica, _ = e.fs.GetFloat64("cores-per-replica")
	d.MinReplicas, _ = e.fs.GetInt("min-replicas")
	d.ClickHouseReplicas, _ = e.fs.GetInt("clickhouse-replicas")
	d.ClickHouseCores, _ = e.fs.GetFloat64("clickhouse-cores")
	d.ClickHouseDiskGiB, _ = e.fs.GetFloat64("clickhouse-disk-gib")
	d.KafkaReplication, _ = e.fs.GetInt("kafka-replication")
	d.KafkaDiskGiB, _ = e.fs.GetFloat64("kafka-disk-gib")
	d.DiskFill, _ = e.fs.GetFloat64("disk-fill")
	d.DedupHorizon, _ = e.fs.GetDuration("dedup-horizon")
	if d.DedupHorizon == 0 {
		d.DedupHorizon = e.cfg.Aggregate.DedupHorizon
	}
	d.DedupBytesPerID, _ = e.fs.GetFloat64("dedup-bytes-per-id")
	plans := make([]capacity.Plan, 0, len(rates))
	for _, r := range rates {
		d.EventsPerSecond = r
		p, err := capacity.Compute(in, d)
		if err != nil {
			return err
		}
		plans = append(plans, p)
	}
	return capacity.Write(e.out, in, plans, format)
}

func capacityMeasureFlags(fs *pflag.FlagSet) {
	fs.Int("events", 200_000, "distinct events to generate (loadgen's default traffic, with its duplicates and malformed records)")
	fs.Duration("span", time.Hour, "event time the events cover, ending five minutes ago")
	fs.Int64("seed", 1, "loadgen seed")
	fs.String("out", capacity.DefaultStoragePath, "JSON file to write the measurement to")
	fs.String("sample-database", "", "empty ClickHouse database to load the sample into (default: aivis_capacity_<time>, kept afterwards)")
}

// runCapacityMeasure loads a sample through the whole pipeline into a
// database of its own on clickhouse.addr and writes what it measured.
func runCapacityMeasure(ctx context.Context, e *env) error {
	events, _ := e.fs.GetInt("events")
	span, _ := e.fs.GetDuration("span")
	seed, _ := e.fs.GetInt64("seed")
	out, _ := e.fs.GetString("out")
	db, _ := e.fs.GetString("sample-database")
	if db == "" {
		db = "aivis_capacity_" + time.Now().UTC().Format("20060102t150405")
	}
	cfg := e.cfg
	cfg.ClickHouse.Database = db
	if cfg.ClickHouse.Cluster != "" {
		return fmt.Errorf("aivis capacity measure runs on one ClickHouse server; unset clickhouse.cluster (%q) and point clickhouse.addr at one node", cfg.ClickHouse.Cluster)
	}
	if err := requireEmpty(ctx, cfg.ClickHouse); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "loading %d events over %s of event time into ClickHouse %s, database %s …\n", events, span, cfg.ClickHouse.Addr, db)
	m, err := sample.Run(ctx, cfg, sample.Options{Events: events, Span: span, Seed: seed}, e.log)
	if err != nil {
		return err
	}
	cmd := []string{"aivis", "capacity", "measure"}
	e.fs.Visit(func(f *pflag.Flag) { cmd = append(cmd, "--"+f.Name+"="+f.Value.String()) })
	m.Command = strings.Join(cmd, " ")
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("writing the measurement: %w", err)
		}
	}
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the measurement: %w", err)
	}
	ev, win := m.Table(chsink.TableEvents), m.Table(chsink.TableWindows)
	fmt.Fprintf(e.out, "%s: %d rows, %.1f bytes on disk a row, compression %.2f×\n", chsink.TableEvents, ev.Rows, ev.BytesPerRow, ev.Ratio)
	fmt.Fprintf(e.out, "%s: %d rows, %.1f bytes on disk a row, compression %.2f×\n", chsink.TableWindows, win.Rows, win.BytesPerRow, win.Ratio)
	fmt.Fprintf(e.out, "Kafka: %.0f bytes stored a raw record (%.0f written), %.0f an enriched one (%.0f written)\n",
		m.RawStoredBytes, m.RawRecordBytes, m.EnrichedStoredBytes, m.EnrichedRecordBytes)
	fmt.Fprintf(e.out, "wrote %s; the sample stays in database %s (DROP DATABASE %s to remove it)\n", out, db, db)
	return nil
}

// requireEmpty refuses a sample database that already holds tables: the
// measurement must size the sample alone.
func requireEmpty(ctx context.Context, cfg chsink.Config) error {
	store, err := chsink.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	var n uint64
	if err := store.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ?", cfg.Database).Scan(&n); err != nil {
		return fmt.Errorf("checking that database %s is empty: %w", cfg.Database, err)
	}
	if n > 0 {
		return fmt.Errorf("database %s already holds %d tables; the sample needs an empty one (--sample-database)", cfg.Database, n)
	}
	return nil
}
