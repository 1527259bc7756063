package clickhouse

import (
	"time"

	"testing"

	"github.com/ClickHouse/ch-go/proto"
	chcolumn "github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/schemas"
)

// eventColumnTypes are usage_events' column types on a server without
// LowCardinality (18.16), as the driver learns them from the server.
var eventColumnTypes = map[string]chcolumn.Type{
	"event_id": "String", "time": "DateTime", "date": "Date", "kind": "String", "source": "String",
	"provider": "String", "model": "String", "operation": "String", "status": "String",
	"error_type": "String", "latency_ms": "Int64", "service_tier": "String", "team": "String",
	"project": "String", "cost_center": "String", "api_key_id": "String",
	"input_tokens": "Int64", "cache_read_input_tokens": "Int64", "cache_write_input_tokens": "Int64",
	"output_tokens": "Int64", "reasoning_output_tokens": "Int64", "cost_usd": "Decimal(38, 12)",
	"cost_source": "String", "catalog_version": "String", "price_id": "String",
	"unpriced": "UInt8", "unowned": "UInt8", "labels": "String", "raw_usage": "String",
	"src_partition": "UInt32", "src_offset": "Int64", "rating_version": "UInt64",
	"usage_json": "String", "provider_cost_usd": "String", "canonical_model": "String",
	"pricing_warnings": "Array(String)", "gpu_model": "String", "gpu_host": "String", "mig_profile": "String",
	"gpu_owner_kind": "String", "gpu_owner_id": "String", "pricing_category": "String",
	"allocated_gpu_seconds": "Float64", "busy_gpu_seconds": "Float64", "energy_joules": "Float64",
	"end_user": "String", "tags": "Array(String)", "request_bytes": "Int64", "response_bytes": "Int64",
	"provider_region": "String", "provider_endpoint": "String", "unapproved": "UInt8",
	"region_not_allowed": "UInt8", "missing_labels": "UInt8", "request_count": "UInt32",
}

// BenchmarkEncodeEvents measures the client's share of an events INSERT
// without a server: building the columns, appending them to the driver's
// columns as send does and encoding the block, per event.
func BenchmarkEncodeEvents(b *testing.B) {
	const batch = 10_000
	events := testEvents(batch)
	for i := 0; i < batch; i += 2 {
		// As loadgen's dated model names give half the events.
		events[i].Event.Warnings = []string{pricing.WarnSnapshotFallback + ": priced as gpt-4o"}
	}
	var out proto.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf := new(eventBuffers)
		cols, err := buf.columns(events)
		if err != nil {
			b.Fatal(err)
		}
		out.Reset()
		for _, c := range cols {
			if c.omitable {
				continue // left out of the INSERT, as send does
			}
			dc, err := eventColumnTypes[c.name].Column(c.name, &chcolumn.ServerContext{Timezone: time.UTC})
			if err != nil {
				b.Fatal(err)
			}
			if !appendTyped(dc, c.data) {
				data := c.data
				if p, ok := data.(picoUSD); ok {
					data = p.decimals()
				}
				if _, err := dc.Append(data); err != nil {
					b.Fatalf("%s: %v", c.name, err)
				}
			}
			dc.Encode(&out)
		}
		buf.release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
}

// windowColumnTypes are cost_by_window's column types on a server without
// LowCardinality (18.16).
var windowColumnTypes = map[string]chcolumn.Type{
	"window_start": "DateTime", "window_seconds": "UInt32", "provider": "String", "model": "String",
	"team": "String", "project": "String", "src_partition": "UInt32", "through_offset": "Int64",
	"requests": "UInt64", "errors": "UInt64", "unpriced_requests": "UInt64",
	"input_tokens": "Int64", "cache_read_input_tokens": "Int64", "cache_write_input_tokens": "Int64",
	"output_tokens": "Int64", "reasoning_output_tokens": "Int64", "cost_usd": "Decimal(38, 12)",
	"latency_count": "UInt64", "latency_sum_ms": "Int64", "latency_hist": "Array(UInt64)", "emitted_at": "DateTime",
}

// BenchmarkEncodeWindows is BenchmarkEncodeEvents for window rows, each
// with its 96 latency buckets, per row.
func BenchmarkEncodeWindows(b *testing.B) {
	base := testRows()
	rows := make([]schemas.WindowRow, 4096)
	idx := make([]int, len(rows))
	for i := range rows {
		rows[i], idx[i] = base[i%len(base)], i
	}
	var out proto.Buffer
	b.ReportAllocs()
	for b.Loop() {
		cols, err := windowColumns(rows, idx, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		out.Reset()
		for _, c := range cols {
			dc, err := windowColumnTypes[c.name].Column(c.name, &chcolumn.ServerContext{Timezone: time.UTC})
			if err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
			if !appendTyped(dc, c.data) {
				if _, err := dc.Append(c.data); err != nil {
					b.Fatalf("%s: %v", c.name, err)
				}
			}
			dc.Encode(&out)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
}
