package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// rawCeiling reads the whole raw topic with a group consumer and discards
// it: the most any consumer of this broker can do on this machine.
func rawCeiling(ctx context.Context, addr string, n int) (float64, error) {
	began := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup(fmt.Sprint("bench-raw-", began.UnixNano())),
		kgo.ConsumeTopics(schemas.TopicRaw), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("reading the raw topic: %d of %d records after %s: %w", got, n, time.Since(began).Round(time.Second), err)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return 0, fmt.Errorf("reading the raw topic: %v", errs[0].Err)
		}
		got += fs.NumRecords()
	}
	return float64(n) / time.Since(began).Seconds(), nil
}

// The peer reads each Kafka record as one String with TabSeparated and the
// row delimiter '\n' (records carry no trailing newline), and takes fields
// out with visitParamExtract*: 18.16 has no JSONExtract, and JSONEachRow
// cannot reach nested objects such as usage.input_tokens. visitParam finds
// the first occurrence of a key anywhere in the line; in a canonical event
// usage comes before raw_usage, and labels (team, project) come before any
// other object holding those names. TabSeparated unescapes backslash
// sequences, so a JSON string holding \" or \\ would reach the view
// altered; loadgen's events hold none.
const peerKafkaDDL = `CREATE TABLE %s.kafka_raw (line String)
ENGINE = Kafka('%s', '%s', '%s', 'TabSeparated', '\n', '', %d)`

const peerSumsDDL = `CREATE TABLE %s.sums (
    minute DateTime, model String, api_key_id String, requests UInt64, tokens Int64
) ENGINE = SummingMergeTree() ORDER BY (minute, model, api_key_id)`

const peerSumsView = `CREATE MATERIALIZED VIEW %s.sums_mv TO %s.sums AS SELECT
    toStartOfMinute(parseDateTimeBestEffort(visitParamExtractString(line, 'time'))) AS minute,
    visitParamExtractString(line, 'model') AS model,
    visitParamExtractString(line, 'api_key_id') AS api_key_id,
    toUInt64(1) AS requests,
    visitParamExtractInt(line, 'input_tokens') + visitParamExtractInt(line, 'output_tokens') AS tokens
FROM %s.kafka_raw`

// peerEventsDDL has usage_events' columns (sinks/clickhouse/migrations.go);
// cost and pricing columns are constants: a ClickHouse user has no catalog
// to price with (18.16 wants every column of a TO table in the view).
const peerEventsDDL = `CREATE TABLE %s.events (
    event_id String, time DateTime, date Date, kind String, source String, provider String,
    model String, operation String, status String, error_type String, latency_ms Int64,
    service_tier String, team String, project String, cost_center String, api_key_id String,
    input_tokens Int64, cache_read_input_tokens Int64, cache_write_input_tokens Int64,
    output_tokens Int64, reasoning_output_tokens Int64, cost_usd Decimal(38, 12),
    cost_source String, catalog_version String, price_id String, unpriced UInt8, unowned UInt8,
    labels String, raw_usage String, src_partition UInt32, src_offset Int64, rating_version UInt64
) ENGINE = ReplacingMergeTree(rating_version)
PARTITION BY toYYYYMM(date)
ORDER BY (date, team, model, event_id)`

const peerEventsView = `CREATE MATERIALIZED VIEW %s.events_mv TO %s.events AS SELECT
    visitParamExtractString(line, 'event_id') AS event_id,
    parseDateTimeBestEffort(visitParamExtractString(line, 'time')) AS time,
    toDate(time) AS date,
    visitParamExtractString(line, 'kind') AS kind,
    visitParamExtractString(line, 'source') AS source,
    visitParamExtractString(line, 'provider') AS provider,
    visitParamExtractString(line, 'model') AS model,
    visitParamExtractString(line, 'operation') AS operation,
    visitParamExtractString(line, 'status') AS status,
    visitParamExtractString(line, 'error_type') AS error_type,
    visitParamExtractInt(line, 'latency_ms') AS latency_ms,
    visitParamExtractString(line, 'service_tier') AS service_tier,
    visitParamExtractString(line, 'team') AS team,
    visitParamExtractString(line, 'project') AS project,
    visitParamExtractString(line, 'cost_center') AS cost_center,
    visitParamExtractString(line, 'api_key_id') AS api_key_id,
    visitParamExtractInt(line, 'input_tokens') AS input_tokens,
    visitParamExtractInt(line, 'cache_read_input_tokens') AS cache_read_input_tokens,
    visitParamExtractInt(line, 'cache_write_input_tokens') AS cache_write_input_tokens,
    visitParamExtractInt(line, 'output_tokens') AS output_tokens,
    visitParamExtractInt(line, 'reasoning_output_tokens') AS reasoning_output_tokens,
    visitParamExtractRaw(line, 'labels') AS labels,
    visitParamExtractRaw(line, 'raw_usage') AS raw_usage,
    toDecimal128(0, 12) AS cost_usd, '' AS cost_source, '' AS catalog_version, '' AS price_id,
    toUInt8(0) AS unpriced, toUInt8(0) AS unowned,
    toUInt32(0) AS src_partition, toInt64(0) AS src_offset, toUInt64(0) AS rating_version
FROM %s.kafka_raw`

// peerCH measures ClickHouse's own Kafka engine on the raw topic: a
// materialized view of sums, and with storeEvents a second view storing
// every event. It returns events/s from creating the Kafka table until
// sum(requests) = n (and, with storeEvents, n stored events). ClickHouse
// 18.16's engine sometimes leaves the last few records of a topic unread
// until more arrive; when the count stops short by at most 0.1% for
// stallAfter, the rate is taken at the last progress and the shortfall is
// returned as missing, so the run still has a figure and says what the
// peer did not count. The engine delivers at least once: after a
// rebalance of its consumers it may read records again and count them
// twice. Then sum(requests) passes n; once it has stood still for
// stallAfter (and, with storeEvents, n rows are stored) the rate is taken
// at the last progress and the excess is returned as extra.
//
// sustained is the rate between 10% and 90% of the events counted (and
// stored), as for aivis (see progress).
func peerCH(ctx context.Context, conn driver.Conn, db, brokerAddr, group string, consumers, n int, storeEvents bool) (rate, sustained float64, missing, extra int, err error) {
	stmts := []string{
		fmt.Sprintf(peerSumsDDL, db),
		fmt.Sprintf(peerSumsView, db, db, db),
	}
	if storeEvents {
		stmts = append(stmts, fmt.Sprintf(peerEventsDDL, db), fmt.Sprintf(peerEventsView, db, db, db))
	}
	// The views are created before the Kafka table reads anything: the
	// engine starts consuming once a view is attached, so the Kafka table
	// is created first (it reads nothing on its own), then the views.
	began := time.Now()
	prog := newProgress(began)
	if err := conn.Exec(ctx, fmt.Sprintf(peerKafkaDDL, db, brokerAddr, schemas.TopicRaw, group, consumers)); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("creating the Kafka engine table: %w", err)
	}
	defer func() {
		// Dropping the Kafka table stops its consumers.
		for _, t := range []string{"sums_mv", "events_mv", "kafka_raw"} {
			_ = conn.Exec(context.Background(), fmt.Sprintf("DROP TABLE IF EXISTS %s.%s", db, t))
		}
	}()
	for _, s := range stmts {
		if err := conn.Exec(ctx, s); err != nil {
			return 0, 0, 0, 0, fmt.Errorf("%s: %w", firstLine(s), err)
		}
	}
	// A view that fails (a bad column, say) only writes to the server's
	// error log, so a stall is the one sign the harness gets of it.
	var last, lastStored uint64
	lastMoved := time.Now()
	stalled, over := false, false
	err = waitUntil(ctx, "ClickHouse's Kafka engine to count every event", 30*time.Minute, 250*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		sum, err := queryUint(ctx, conn, fmt.Sprintf("SELECT toUInt64(sum(requests)) FROM %s.sums", db))
		if err != nil {
			return false, "", err
		}
		stored := uint64(n)
		if storeEvents {
			if stored, err = queryUint(ctx, conn, fmt.Sprintf("SELECT count() FROM %s.events", db)); err != nil {
				return false, "", err
			}
		}
		prog.add(min(sum, stored))
		if sum != last || stored != lastStored {
			last, lastStored, lastMoved = sum, stored, time.Now()
		} else if short := uint64(n) - min(sum, stored); sum <= uint64(n) && short > 0 && short <= uint64(n)/1000 && time.Since(lastMoved) > stallAfter {
			stalled = true
			return true, "", nil
		} else if time.Since(lastMoved) > time.Minute {
			return false, "", fmt.Errorf("sum(requests) stuck at %d of %d for a minute: ClickHouse's Kafka engine or a view fails; see the server's error log (clickhouse.err)", sum, n)
		}
		if sum > uint64(n) {
			if time.Since(lastMoved) > stallAfter && stored >= uint64(n) {
				over = true
				return true, "", nil
			}
			return false, fmt.Sprintf("sum(requests) %d, more than the %d events: records read twice; waiting until it stops", sum, n), nil
		}
		if sum < uint64(n) {
			return false, fmt.Sprintf("sum(requests) %d of %d", sum, n), nil
		}
		return stored >= uint64(n), fmt.Sprintf("%d of %d events stored", stored, n), nil
	})
	if err != nil {
		return 0, 0, 0, 0, err
	}
	switch {
	case stalled:
		counted := min(last, lastStored)
		return float64(counted) / lastMoved.Sub(began).Seconds(), prog.sustained(n), n - int(counted), 0, nil
	case over:
		return float64(n) / lastMoved.Sub(began).Seconds(), prog.sustained(n), 0, int(last) - n, nil
	}
	return float64(n) / time.Since(began).Seconds(), prog.sustained(n), 0, 0, nil
}

// stallAfter is how long the peer's count may stand still a few records
// short of the total before the harness takes the rate at its last
// progress.
const stallAfter = 20 * time.Second

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// naiveEvent is what the naive reference decodes: the fields it stores.
type naiveEvent struct {
	EventID     string            `json:"event_id"`
	Time        time.Time         `json:"time"`
	Kind        string            `json:"kind"`
	Source      string            `json:"source"`
	Provider    string            `json:"provider"`
	Model       string            `json:"model"`
	Operation   string            `json:"operation"`
	Status      string            `json:"status"`
	ErrorType   string            `json:"error_type"`
	LatencyMs   int64             `json:"latency_ms"`
	ServiceTier string            `json:"service_tier"`
	APIKeyID    string            `json:"api_key_id"`
	Labels      map[string]string `json:"labels"`
	Usage       struct {
		Input      int64 `json:"input_tokens"`
		CacheRead  int64 `json:"cache_read_input_tokens"`
		CacheWrite int64 `json:"cache_write_input_tokens"`
		Output     int64 `json:"output_tokens"`
		Reasoning  int64 `json:"reasoning_output_tokens"`
	} `json:"usage"`
	RawUsage json.RawMessage `json:"raw_usage"`
}

type naiveKey struct {
	minute        time.Time
	model, apiKey string
}

type naiveSum struct{ requests, tokens int64 }

// naive is the afternoon's Go consumer: one goroutine, encoding/json, a
// map of sums, every event appended row by row to a ReplacingMergeTree in
// batches of 10,000, the sums inserted at the end.
func naive(ctx context.Context, conn driver.Conn, db, addr string, n int) (float64, error) {
	for _, s := range []string{
		fmt.Sprintf(strings.Replace(peerEventsDDL, ".events (", ".naive_events (", 1), db),
		fmt.Sprintf(strings.Replace(peerSumsDDL, ".sums (", ".naive_sums (", 1), db),
	} {
		if err := conn.Exec(ctx, s); err != nil {
			return 0, fmt.Errorf("%s: %w", firstLine(s), err)
		}
	}
	began := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup(fmt.Sprint("bench-naive-", began.UnixNano())),
		kgo.ConsumeTopics(schemas.TopicRaw), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	const insert = `INSERT INTO %s.naive_events (event_id, time, date, kind, source, provider, model, operation, status,
 error_type, latency_ms, service_tier, team, project, api_key_id, input_tokens, cache_read_input_tokens,
 cache_write_input_tokens, output_tokens, reasoning_output_tokens, labels, raw_usage, src_partition, src_offset)`
	sums := map[naiveKey]*naiveSum{}
	batch, err := conn.PrepareBatch(ctx, fmt.Sprintf(insert, db))
	if err != nil {
		return 0, err
	}
	pending, got := 0, 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("naive consumer: %d of %d events after %s: %w", got, n, time.Since(began).Round(time.Second), err)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return 0, fmt.Errorf("naive consumer: %v", errs[0].Err)
		}
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			var ev naiveEvent
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				return 0, fmt.Errorf("naive consumer: decoding offset %d: %w", r.Offset, err)
			}
			labels, _ := json.Marshal(ev.Labels)
			if err := batch.Append(ev.EventID, ev.Time, ev.Time, ev.Kind, ev.Source, ev.Provider, ev.Model, ev.Operation, ev.Status,
				ev.ErrorType, ev.LatencyMs, ev.ServiceTier, ev.Labels["team"], ev.Labels["project"], ev.APIKeyID,
				ev.Usage.Input, ev.Usage.CacheRead, ev.Usage.CacheWrite, ev.Usage.Output, ev.Usage.Reasoning,
				string(labels), string(ev.RawUsage), uint32(r.Partition), r.Offset); err != nil {
				return 0, err
			}
			k := naiveKey{ev.Time.Truncate(time.Minute), ev.Model, ev.APIKeyID}
			s := sums[k]
			if s == nil {
				s = &naiveSum{}
				sums[k] = s
			}
			s.requests++
			s.tokens += ev.Usage.Input + ev.Usage.Output
			got++
			pending++
			if pending == 10_000 || got == n {
				if err := batch.Send(); err != nil {
					return 0, fmt.Errorf("naive consumer: inserting a batch: %w", err)
				}
				if batch, err = conn.PrepareBatch(ctx, fmt.Sprintf(insert, db)); err != nil {
					return 0, err
				}
				pending = 0
			}
		}
	}
	_ = batch.Abort()
	sb, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.naive_sums (minute, model, api_key_id, requests, tokens)", db))
	if err != nil {
		return 0, err
	}
	for k, s := range sums {
		if err := sb.Append(k.minute, k.model, k.apiKey, uint64(s.requests), s.tokens); err != nil {
			return 0, err
		}
	}
	if err := sb.Send(); err != nil {
		return 0, fmt.Errorf("naive consumer: inserting the sums: %w", err)
	}
	elapsed := time.Since(began)
	sum, err := queryUint(ctx, conn, fmt.Sprintf("SELECT toUInt64(sum(requests)) FROM %s.naive_sums", db))
	if err != nil {
		return 0, err
	}
	if sum != uint64(n) {
		return 0, errors.New("naive consumer: sums do not add up to the events read")
	}
	return float64(n) / elapsed.Seconds(), nil
}
