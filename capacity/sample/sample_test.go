package sample

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/capacity"
	"github.com/aivis-dev/aivis/internal/config"
	"github.com/aivis-dev/aivis/internal/testenv"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// TestTableNames: the measurement reads the sink's tables.
func TestTableNames(t *testing.T) {
	for _, c := range [][2]string{{capacity.EventsTable, chsink.TableEvents}, {capacity.WindowsTable, chsink.TableWindows}, {capacity.MigrationsTable, chsink.TableMigrations}} {
		if c[0] != c[1] {
			t.Errorf("capacity names table %q, the sink %q", c[0], c[1])
		}
	}
}

// TestRun loads a small sample through the pipeline into the real
// ClickHouse and checks that what is measured is that sample, merged:
// one row per distinct event, compressed, and Kafka records of the sizes
// the stages write.
func TestRun(t *testing.T) {
	addr, db := testenv.ClickHouseDatabase(t)
	cfg := config.Default()
	cfg.ClickHouse.Addr, cfg.ClickHouse.Database = addr, db
	cfg.Kafka.Partitions = 2
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const events = 3000
	m, err := Run(ctx, cfg, Options{Events: events, Span: 20 * time.Minute, Seed: 7}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Events != events || m.Records <= events {
		t.Errorf("generated %d distinct events in %d records, want %d in more (loadgen resends and breaks some)", m.Events, m.Records, events)
	}
	ev, win := m.Table(chsink.TableEvents), m.Table(chsink.TableWindows)
	// Merged: the resent duplicates collapsed, so one row per event.
	if ev.Rows != events {
		t.Errorf("%s holds %d rows after OPTIMIZE FINAL, want %d (one per distinct event)", chsink.TableEvents, ev.Rows, events)
	}
	for _, ts := range []capacity.TableSize{ev, win} {
		if !(ts.Ratio > 1) || !(ts.BytesPerRow > 0) || ts.BytesOnDisk < ts.Compressed {
			t.Errorf("%s: compression %.2f, %.1f bytes a row, %d on disk of %d compressed: want a ratio above 1 and the disk to hold the data",
				ts.Table, ts.Ratio, ts.BytesPerRow, ts.BytesOnDisk, ts.Compressed)
		}
	}
	if m.Series == 0 || m.WindowRows != win.Rows || m.WindowMinutes < 15 {
		t.Errorf("windows: %d series, %d rows (table %d), %d minutes; want the rows of the table over about 20 minutes", m.Series, m.WindowRows, win.Rows, m.WindowMinutes)
	}
	if !(m.RawRecordBytes > 200) || !(m.EnrichedRecordBytes > m.RawRecordBytes) || m.EnrichedRecords < events {
		t.Errorf("Kafka: raw %.0f B, enriched %.0f B in %d records; want enriched records larger than raw, one per valid record",
			m.RawRecordBytes, m.EnrichedRecordBytes, m.EnrichedRecords)
	}
	// Stored: compressed batches (kafka.compression's default, snappy),
	// smaller than the records.
	for _, ts := range m.Topics {
		if ts.Batches == 0 || ts.Compression != 2 || ts.StoredBytes >= ts.RecordBytes {
			t.Errorf("topic %s: %d batches, codec %d, %d bytes stored of %d written; want snappy (2) batches, smaller", ts.Topic, ts.Batches, ts.Compression, ts.StoredBytes, ts.RecordBytes)
		}
	}
	if m.KafkaCompression != "snappy" {
		t.Errorf("kafka_compression %q, want snappy", m.KafkaCompression)
	}
	if m.RawStoredBytes <= 0 || m.EnrichedStoredBytes <= 0 {
		t.Errorf("stored bytes per record: raw %v, enriched %v", m.RawStoredBytes, m.EnrichedStoredBytes)
	}
	if !slices.ContainsFunc(m.EventColumns, func(c capacity.ColumnSize) bool { return c.Name == "event_id" && c.Compressed > 0 }) {
		t.Errorf("usage_events columns lack event_id: %+v", m.EventColumns)
	}

	// What plan reads: the measurement written as JSON, with the
	// repository's benchmark run.
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "capacity.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := capacity.LoadInputs(filepath.Join("..", "..", capacity.DefaultBenchmarkPath), path)
	if err != nil {
		t.Fatal(err)
	}
	if in.EventBytes != ev.BytesPerRow || in.WindowBytes != win.BytesPerRow {
		t.Errorf("inputs %v and %v bytes a row, want the measured %v and %v", in.EventBytes, in.WindowBytes, ev.BytesPerRow, win.BytesPerRow)
	}
	if _, err := capacity.Compute(in, func() capacity.Demand {
		d := capacity.DefaultDemand()
		d.EventsPerSecond, d.Retention = 1000, 24*time.Hour
		return d
	}()); err != nil {
		t.Fatal(err)
	}

	// Measured again, the merged tables are the same.
	m2 := &capacity.Measurement{}
	store, err := chsink.Open(ctx, cfg.ClickHouse)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := Measure(ctx, store, db, m2); err != nil {
		t.Fatal(err)
	}
	if got := m2.Table(chsink.TableEvents).Rows; got != events {
		t.Errorf("measuring again: %d rows, want %d", got, events)
	}
	if err := Measure(ctx, store, db+"_none", m2); err == nil {
		t.Error("measuring a database without tables: no error")
	}
}

// TestRunZstd: the sample is written as a deployment with
// kafka.compression zstd writes it, raw and enriched records alike, and
// says so.
func TestRunZstd(t *testing.T) {
	addr, db := testenv.ClickHouseDatabase(t)
	cfg := config.Default()
	cfg.ClickHouse.Addr, cfg.ClickHouse.Database = addr, db
	cfg.Kafka.Partitions = 2
	cfg.Kafka.Compression = "zstd"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, err := Run(ctx, cfg, Options{Events: 1000, Span: 10 * time.Minute, Seed: 7}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range m.Topics {
		if ts.Compression != 4 {
			t.Errorf("topic %s: batches of codec %d, want zstd (4)", ts.Topic, ts.Compression)
		}
	}
	if m.KafkaCompression != "zstd" {
		t.Errorf("kafka_compression %q, want zstd", m.KafkaCompression)
	}
}
