package capacity

import "time"

// Table names the measurement reads; the sample package checks that they
// are the ClickHouse sink's.
const (
	EventsTable     = "usage_events"
	WindowsTable    = "cost_windows"
	MigrationsTable = "aivis_schema_migrations"
)

// Measurement is what a sample measured (package capacity/sample, `aivis
// capacity measure`): the size of every table in ClickHouse once merged,
// the columns of usage_events, and the bytes of the Kafka records, for a
// known number of events.
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
	// Kafka bytes per record: key and value, and as stored (the
	// producer's compressed batches with their headers).
	RawRecordBytes      float64 `json:"raw_record_bytes"`
	EnrichedRecordBytes float64 `json:"enriched_record_bytes"`
	RawStoredBytes      float64 `json:"raw_stored_bytes"`
	EnrichedStoredBytes float64 `json:"enriched_stored_bytes"`
	// KafkaCompression is the kafka.compression the sample's producers
	// used (the stored bytes depend on it); empty in older files.
	KafkaCompression string       `json:"kafka_compression,omitempty"`
	EnrichedRecords  int64        `json:"enriched_records"`
	Topics           []TopicSize  `json:"topics"`
	Tables           []TableSize  `json:"tables"`
	EventColumns     []ColumnSize `json:"usage_events_columns"`
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

// TopicSize is what one topic holds: its records, their key and value
// bytes, and the record batches as the broker stores them (compressed by
// the producer, with the 61-byte batch header).
type TopicSize struct {
	Topic       string `json:"topic"`
	Records     int64  `json:"records"`
	RecordBytes int64  `json:"record_bytes"`
	Batches     int64  `json:"batches"`
	StoredBytes int64  `json:"stored_bytes"`
	// Compression is the codec of the batches (Kafka's numbering: 0 none,
	// 1 gzip, 2 snappy, 3 lz4, 4 zstd).
	Compression uint8 `json:"compression"`
}
