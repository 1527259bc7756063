// Package sample loads a sample of loadgen traffic through the whole
// pipeline into ClickHouse and measures what it takes there and in Kafka:
// the storage inputs of package capacity (aivis capacity measure).
package sample

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/capacity"
	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/config"
	"github.com/aivis-dev/aivis/internal/loadgen"
	"github.com/aivis-dev/aivis/internal/pipeline"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// Options shape the traffic of a sample.
type Options struct {
	// Events is how many distinct valid events to generate.
	Events int
	// Span is the event time they cover, ending five minutes ago.
	Span time.Duration
	Seed int64
}

// Run runs the pipeline of cfg in this process (embedded Kafka,
// ingest, enrich, aggregate) into cfg's ClickHouse database, which should
// be empty; produces loadgen's default traffic straight to the raw topic
// until opts.Events distinct events are sent; drains; reads the size of
// the topics' records; merges every table (OPTIMIZE … FINAL, as the
// server's merges would in time) and measures them.
func Run(ctx context.Context, cfg config.Config, opts Options, log *slog.Logger) (*capacity.Measurement, error) {
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

	m := &capacity.Measurement{Date: time.Now().UTC(), ClickHouse: p.Store.ServerVersion(), Partitions: cfg.Kafka.Partitions, SpanSeconds: opts.Span.Seconds()}
	m.KafkaCompression = cfg.Kafka.Compression
	if m.KafkaCompression == "" {
		m.KafkaCompression = bus.Codecs[0]
	}
	if err := produceSample(ctx, p.Brokers, m.KafkaCompression, opts, m); err != nil {
		return nil, err
	}
	if err := p.Drain(5 * time.Minute); err != nil {
		return nil, fmt.Errorf("draining the sample pipeline: %w", err)
	}
	for _, topic := range []string{schemas.TopicRaw, schemas.TopicEnriched} {
		ts, err := topicBytes(ctx, p.Brokers, topic)
		if err != nil {
			return nil, err
		}
		m.Topics = append(m.Topics, ts)
	}
	raw, enriched := m.Topics[0], m.Topics[1]
	if raw.Records == 0 || enriched.Records == 0 {
		return nil, fmt.Errorf("measuring the topics: %d raw and %d enriched records; the sample did not arrive", raw.Records, enriched.Records)
	}
	// Per record: the raw topic also holds the duplicates and malformed
	// records loadgen sends, the enriched one the duplicates (aggregate
	// drops them).
	m.RawRecordBytes = float64(raw.RecordBytes) / float64(raw.Records)
	m.EnrichedRecordBytes = float64(enriched.RecordBytes) / float64(enriched.Records)
	m.RawStoredBytes = float64(raw.StoredBytes) / float64(raw.Records)
	m.EnrichedStoredBytes = float64(enriched.StoredBytes) / float64(enriched.Records)
	m.EnrichedRecords = enriched.Records
	if err := Measure(ctx, p.Store, cfg.ClickHouse.Database, m); err != nil {
		return nil, err
	}
	return m, nil
}

// produceSample sends loadgen's traffic, event times spread over the span,
// until opts.Events distinct events are sent, with the client's default
// batching and the codec ingest would use (kafka.compression).
func produceSample(ctx context.Context, brokers []string, compression string, opts Options, m *capacity.Measurement) error {
	codec, err := bus.Codec(compression)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(schemas.TopicRaw), kgo.ProducerBatchCompression(codec))
	if err != nil {
		return fmt.Errorf("connecting to the sample pipeline's Kafka: %w", err)
	}
	defer cl.Close()
	lc := loadgen.DefaultConfig()
	lc.Seed = opts.Seed
	// Rate and time scale only place the events in time: a rate of 1,000
	// a second scaled so that Events of them cover Span.
	lc.Rate = 1000
	lc.TimeScale = opts.Span.Seconds() * lc.Rate / float64(opts.Events)
	// No daily shape: at the hours where it lowers the rate, Events of
	// them would run past the span into the future, where the aggregator
	// refuses them (MaxFuture), and the sample would store fewer.
	lc.DiurnalAmplitude = 0
	lc.Duration = 0
	lc.Start = time.Now().Add(-opts.Span - 5*time.Minute).UTC().Truncate(time.Minute)
	gen := loadgen.NewGenerator(lc)
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
		batch = append(batch, r)
		m.Records++
		if !it.Malformed && !it.Duplicate {
			m.Events++
		}
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if len(batch) > 0 {
		if err := flush(); err != nil {
			return err
		}
	}
	return nil
}

// batchHeaderBytes is the fixed header of a Kafka record batch, which
// franz-go's batch metrics leave out.
const batchHeaderBytes = 61

type batchMeter struct {
	mu sync.Mutex
	capacity.TopicSize
}

func (b *batchMeter) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.Batches++
	b.StoredBytes += int64(m.CompressedBytes) + batchHeaderBytes
	b.Compression = max(b.Compression, m.CompressionType)
}

// topicBytes reads a topic from the start to its end and measures it.
func topicBytes(ctx context.Context, brokers []string, topic string) (capacity.TopicSize, error) {
	meter := &batchMeter{TopicSize: capacity.TopicSize{Topic: topic}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(meter))
	if err != nil {
		return capacity.TopicSize{}, fmt.Errorf("reading topic %s: %w", topic, err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return capacity.TopicSize{}, fmt.Errorf("listing the end offsets of topic %s: %w", topic, err)
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	var n, b int64
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for n < want {
		fs := cl.PollFetches(rctx)
		if err := rctx.Err(); err != nil {
			return capacity.TopicSize{}, fmt.Errorf("reading topic %s: %d of %d records after 2 minutes: %w", topic, n, want, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			b += int64(len(r.Key) + len(r.Value))
		})
	}
	cl.Close()
	meter.mu.Lock()
	defer meter.mu.Unlock()
	ts := meter.TopicSize
	ts.Records, ts.RecordBytes = n, b
	return ts, nil
}

// Store is what Measure reads; *clickhouse.Store satisfies it.
type Store interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
	OptimizeFinal(ctx context.Context, table string) error
}

// Measure merges every table of database and records into m each table's
// size, the columns of usage_events, and the windows' series.
func Measure(ctx context.Context, s Store, database string, m *capacity.Measurement) error {
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
ORDER BY table`, []any{database}, func(sc func(...any) error) (capacity.TableSize, error) {
		var t capacity.TableSize
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
ORDER BY data_compressed_bytes DESC, name`, []any{database, chsink.TableEvents}, func(sc func(...any) error) (capacity.ColumnSize, error) {
		var c capacity.ColumnSize
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
