package capacity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/config"
	"github.com/aivis-dev/aivis/internal/loadgen"
	"github.com/aivis-dev/aivis/internal/pipeline"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// Measurement is what Sample measured: the size of every table in
// ClickHouse once merged, the columns of usage_events, and the bytes of
// the Kafka records, for a known number of events.
type Measurement struct {
	Date       time.Time `json:"date"`
	ClickHouse string    `json:"clickhouse"`
	Command    string    `json:"command,omitempty"`
	// Events are the distinct valid events generated; Records every
	// record produced to the raw topic (with resent duplicates and
	// malformed ones, as loadgen's defaults send them).
	Events  int64 `json:"events"`
	Records int64 `json:"records"`
	// Span is the event time the sample covers.
	SpanSeconds float64 `json:"span_seconds"`
	Partitions  int32   `json:"partitions"`
	// Series are the distinct (provider, model, team, project) of the
	// windows, WindowRows their rows, WindowMinutes the windows.
	Series        uint64 `json:"series"`
	WindowRows    uint64 `json:"window_rows"`
	WindowMinutes uint64 `json:"window_minutes"`
	// Kafka record bytes (key + value, uncompressed) per record.
	RawRecordBytes      float64      `json:"raw_record_bytes"`
	EnrichedRecordBytes float64      `json:"enriched_record_bytes"`
	EnrichedRecords     int64        `json:"enriched_records"`
	Tables              []TableSize  `json:"tables"`
	EventColumns        []ColumnSize `json:"usage_events_columns"`
}

// TableSize is one table's active parts (system.parts).
type TableSize struct {
	Table        string `json:"table"`
	Rows         uint64 `json:"rows"`
	BytesOnDisk  uint64 `json:"bytes_on_disk"`
	Compressed   uint64 `json:"data_compressed_bytes"`
	Uncompressed uint64 `json:"data_uncompressed_bytes"`
	// Ratio is uncompressed over compressed; BytesPerRow is on disk
	// (data, marks and the primary index) per row.
	Ratio       float64 `json:"compression_ratio"`
	BytesPerRow float64 `json:"bytes_on_disk_per_row"`
}

// ColumnSize is one column of usage_events (system.columns).
type ColumnSize struct {
	Name         string  `json:"name"`
	Type         string  `json:"type"`
	Compressed   uint64  `json:"data_compressed_bytes"`
	Uncompressed uint64  `json:"data_uncompressed_bytes"`
	Ratio        float64 `json:"compression_ratio"`
}

// Table returns the size of one table (zero when it has no rows).
func (m *Measurement) Table(name string) TableSize {
	for _, t := range m.Tables {
		if t.Table == name {
			return t
		}
	}
	return TableSize{Table: name}
}

// SampleOptions shape the traffic of a sample.
type SampleOptions struct {
	// Events is how many distinct valid events to generate.
	Events int
	// Span is the event time they cover, ending five minutes ago.
	Span time.Duration
	Seed int64
}

// Sample runs the pipeline of cfg in this process (embedded Kafka,
// ingest, enrich, aggregate) into cfg's ClickHouse database, which should
// be empty; produces loadgen's default traffic straight to the raw topic
// until opts.Events distinct events are sent; drains; reads the size of
// the topics' records; merges every table (OPTIMIZE … FINAL, as the
// server's merges would in time) and measures them.
func Sample(ctx context.Context, cfg config.Config, opts SampleOptions, log *slog.Logger) (*Measurement, error) {
	if opts.Events < 1 || opts.Span < time.Minute {
		return nil, fmt.Errorf("sampling: want at least 1 event over at least 1m, got %d events over %s", opts.Events, opts.Span)
	}
	cfg.Kafka.Brokers = nil
	cfg.Ingest.ListenAddr = "127.0.0.1:0"
	cfg.Ingest.Producers = []ingest.ProducerToken{{Name: "capacity", TokenSHA256: ingest.HashToken(ingest.NewToken())}}
	cfg.Aggregate.ScoreAnomalies = false
	cfg.Aggregate.IdleTimeout = time.Second
	cfg.MetricsAddr = ""
	p, err := pipeline.Start(ctx, cfg, "", log)
	if err != nil {
		return nil, fmt.Errorf("starting the sample pipeline: %w", err)
	}
	defer p.Close()

	m := &Measurement{Date: time.Now().UTC(), ClickHouse: p.Store.ServerVersion(), Partitions: cfg.Kafka.Partitions, SpanSeconds: opts.Span.Seconds()}
	rawBytes, err := produceSample(ctx, p.Brokers, opts, m)
	if err != nil {
		return nil, err
	}
	m.RawRecordBytes = float64(rawBytes) / float64(m.Records)
	if err := p.Drain(5 * time.Minute); err != nil {
		return nil, fmt.Errorf("draining the sample pipeline: %w", err)
	}
	n, b, err := topicBytes(ctx, p.Brokers, schemas.TopicEnriched)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		m.EnrichedRecords, m.EnrichedRecordBytes = n, float64(b)/float64(n)
	}
	if err := Measure(ctx, p.Store, cfg.ClickHouse.Database, m); err != nil {
		return nil, err
	}
	return m, nil
}

// produceSample sends loadgen's traffic, event times spread over the span,
// until opts.Events distinct events are sent; it returns the key and
// value bytes produced.
func produceSample(ctx context.Context, brokers []string, opts SampleOptions, m *Measurement) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(schemas.TopicRaw), kgo.ProducerBatchMaxBytes(16<<20))
	if err != nil {
		return 0, fmt.Errorf("connecting to the sample pipeline's Kafka: %w", err)
	}
	defer cl.Close()
	lc := loadgen.DefaultConfig()
	lc.Seed = opts.Seed
	// Rate and time scale only place the events in time: a rate of 1,000
	// a second scaled so that Events of them cover Span.
	lc.Rate = 1000
	lc.TimeScale = opts.Span.Seconds() * lc.Rate / float64(opts.Events)
	lc.Duration = 0
	lc.Start = time.Now().Add(-opts.Span - 5*time.Minute).UTC().Truncate(time.Minute)
	gen := loadgen.NewGenerator(lc)
	var bytes int64
	batch := make([]*kgo.Record, 0, 5000)
	flush := func() error {
		if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
			return fmt.Errorf("producing the sample to %s: %w", schemas.TopicRaw, err)
		}
		batch = batch[:0]
		return nil
	}
	for m.Events < int64(opts.Events) {
		it := gen.Next()
		r := &kgo.Record{Value: it.Raw}
		if it.Event != nil && it.Event.EventID != "" {
			r.Key = []byte(it.Event.EventID)
		}
		bytes += int64(len(r.Key) + len(r.Value))
		batch = append(batch, r)
		m.Records++
		if !it.Malformed && !it.Duplicate {
			m.Events++
		}
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if len(batch) > 0 {
		if err := flush(); err != nil {
			return 0, err
		}
	}
	return bytes, nil
}

// topicBytes reads a topic from the start to its end and returns its
// record count and key and value bytes.
func topicBytes(ctx context.Context, brokers []string, topic string) (int64, int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, 0, fmt.Errorf("reading topic %s: %w", topic, err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, 0, fmt.Errorf("listing the end offsets of topic %s: %w", topic, err)
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	var n, b int64
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for n < want {
		fs := cl.PollFetches(rctx)
		if err := rctx.Err(); err != nil {
			return 0, 0, fmt.Errorf("reading topic %s: %d of %d records after 2 minutes: %w", topic, n, want, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			b += int64(len(r.Key) + len(r.Value))
		})
	}
	return n, b, nil
}

// Store is what Measure reads; *clickhouse.Store satisfies it.
type Store interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
	OptimizeFinal(ctx context.Context, table string) error
}

// Measure merges every table of database and records into m each table's
// size, the columns of usage_events, and the windows' series.
func Measure(ctx context.Context, s Store, database string, m *Measurement) error {
	tables, err := scan(ctx, s, "listing the tables", `SELECT name FROM system.tables WHERE database = ? AND engine LIKE '%MergeTree' ORDER BY name`,
		[]any{database}, func(sc func(...any) error) (string, error) {
			var name string
			return name, sc(&name)
		})
	if err != nil {
		return err
	}
	if len(tables) == 0 {
		return fmt.Errorf("measuring database %s: it has no tables (has `aivis migrate` run against it?)", database)
	}
	for _, t := range tables {
		if err := s.OptimizeFinal(ctx, t); err != nil {
			return err
		}
	}
	m.Tables, err = scan(ctx, s, "reading system.parts", `SELECT table, sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes), sum(data_uncompressed_bytes)
FROM system.parts
WHERE database = ? AND active
GROUP BY table
ORDER BY table`, []any{database}, func(sc func(...any) error) (TableSize, error) {
		var t TableSize
		err := sc(&t.Table, &t.Rows, &t.BytesOnDisk, &t.Compressed, &t.Uncompressed)
		t.Ratio = ratio(t.Uncompressed, t.Compressed)
		if t.Rows > 0 {
			t.BytesPerRow = float64(t.BytesOnDisk) / float64(t.Rows)
		}
		return t, err
	})
	if err != nil {
		return err
	}
	m.EventColumns, err = scan(ctx, s, "reading system.columns", `SELECT name, type, data_compressed_bytes, data_uncompressed_bytes
FROM system.columns
WHERE database = ? AND table = ?
ORDER BY data_compressed_bytes DESC, name`, []any{database, chsink.TableEvents}, func(sc func(...any) error) (ColumnSize, error) {
		var c ColumnSize
		err := sc(&c.Name, &c.Type, &c.Compressed, &c.Uncompressed)
		c.Ratio = ratio(c.Uncompressed, c.Compressed)
		return c, err
	})
	if err != nil {
		return err
	}
	series, err := scan(ctx, s, "counting the window series", `SELECT uniqExact(provider, model, team, project), count(), uniqExact(window_start)
FROM `+chsink.TableWindows+` FINAL`, nil, func(sc func(...any) error) ([3]uint64, error) {
		var v [3]uint64
		return v, sc(&v[0], &v[1], &v[2])
	})
	if err != nil {
		return err
	}
	if len(series) == 1 {
		m.Series, m.WindowRows, m.WindowMinutes = series[0][0], series[0][1], series[0][2]
	}
	if m.Table(chsink.TableEvents).Rows == 0 || m.Table(chsink.TableWindows).Rows == 0 {
		return errors.New("measuring: usage_events or cost_windows is empty; the sample did not arrive")
	}
	return nil
}

func ratio(uncompressed, compressed uint64) float64 {
	if compressed == 0 {
		return 0
	}
	return float64(uncompressed) / float64(compressed)
}

// scan runs query and collects one value per row.
func scan[T any](ctx context.Context, s Store, what, query string, args []any, row func(func(...any) error) (T, error)) ([]T, error) {
	rows, err := s.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := row(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
