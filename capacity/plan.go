// Package capacity sizes an aivis deployment from measured figures: the
// CPU each stage spent per event in the benchmark run
// (benchmarks/results/latest.json), and the bytes each stored event,
// window row and Kafka record takes, measured on a realistic sample
// (benchmarks/results/capacity.json, written by package capacity/sample).
// Plan is pure arithmetic over those inputs and a demand (events per
// second, retention); docs/capacity.md explains each rule.
package capacity

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Inputs are the measured figures a plan is computed from.
type Inputs struct {
	// Per-core throughput of each stage, events per CPU-second.
	IngestPerCore    float64 `json:"ingest_events_per_core_s"`
	EnrichPerCore    float64 `json:"enrich_events_per_core_s"`
	AggregatePerCore float64 `json:"aggregate_events_per_core_s"`
	// StoragePerCore is events per CPU-second of the broker and
	// ClickHouse together: their CPU during the benchmark's end-to-end
	// step, or, for a run that did not measure it, what the machine had
	// left besides enrich and aggregate (an upper bound of their cost).
	StoragePerCore float64 `json:"storage_events_per_core_s"`
	// Bytes on disk (compressed, with marks and indexes) per row.
	EventBytes  float64 `json:"event_bytes_per_row"`
	WindowBytes float64 `json:"window_bytes_per_row"`
	// OtherBytesShare is the size of every other table (anomalies,
	// budgets, governance, savings, …) as a share of usage_events in the
	// sample.
	OtherBytesShare float64 `json:"other_tables_share"`
	// Kafka bytes per record: key and value as the stages write them,
	// and as the broker stores them (compressed batches), which sizes
	// the disk.
	RawRecordBytes      float64 `json:"raw_record_bytes"`
	EnrichedRecordBytes float64 `json:"enriched_record_bytes"`
	RawStoredBytes      float64 `json:"raw_stored_bytes"`
	EnrichedStoredBytes float64 `json:"enriched_stored_bytes"`
	// KafkaCompression is the codec the stored bytes were measured with.
	KafkaCompression string `json:"kafka_compression,omitempty"`
	// Sources say where each figure came from.
	Sources []string `json:"sources"`
}

// Demand is what the deployment must carry, and the hardware and policy
// choices the plan is computed for.
type Demand struct {
	EventsPerSecond float64
	// Retention is how long ClickHouse keeps events and windows;
	// KafkaRetention how long the topics keep records.
	Retention      time.Duration
	KafkaRetention time.Duration
	// Headroom multiplies the average rate for peaks and catching up
	// (2: every stage runs at half its capacity on average).
	Headroom float64
	// Series is the number of distinct (provider, model, team, project)
	// series active in a minute.
	Series int
	// CoresPerReplica is the CPU of one ingest, enrich or aggregate
	// replica; MinReplicas the fewest of each (for restarts).
	CoresPerReplica float64
	MinReplicas     int
	// ClickHouse: replicas per shard, CPU and usable disk per node, and
	// the share of the disk to fill.
	ClickHouseReplicas int
	ClickHouseCores    float64
	ClickHouseDiskGiB  float64
	// Kafka: replication factor, disk per broker.
	KafkaReplication int
	KafkaDiskGiB     float64
	DiskFill         float64
	// DedupHorizon is how long the aggregator remembers an event id, and
	// DedupBytesPerID what one remembered id costs in memory.
	DedupHorizon    time.Duration
	DedupBytesPerID float64
}

// DefaultDedupBytesPerID is the aggregator's memory per remembered event
// id that a plan assumes unless told otherwise (--dedup-bytes-per-id): 5
// bytes, rounded up from the 4.98 that aggregate's BenchmarkDedupState
// measured for 24 h at 10,000 events/s (870M ids in 4,133 MiB: the
// recent ids exact, the older ones in compact hourly buckets, four hours
// to a group; the groups moved it by +0.25 %).
const DefaultDedupBytesPerID = 5.0

// dedupMargin is what a replica's dedup_memory_mib adds to the bytes its
// ids take: room for the exact tier of recent ids, which grows with
// bursts, and for the hour being sealed.
const dedupMargin = 1.1

// DefaultDemand returns the defaults of everything but the rate and the
// retention.
func DefaultDemand() Demand {
	return Demand{
		KafkaRetention: 7 * 24 * time.Hour, Headroom: 2, Series: 1000,
		CoresPerReplica: 2, MinReplicas: 2,
		ClickHouseReplicas: 2, ClickHouseCores: 16, ClickHouseDiskGiB: 2000,
		KafkaReplication: 3, KafkaDiskGiB: 2000, DiskFill: 0.7,
		DedupHorizon: 24 * time.Hour, DedupBytesPerID: DefaultDedupBytesPerID,
	}
}

// Validate reports every unusable value at once, each by its flag name.
func (d Demand) Validate() error {
	var errs []error
	positive := func(name string, v float64) {
		if !(v > 0) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("--%s: %v must be a positive number", name, v))
		}
	}
	positive("events-per-second", d.EventsPerSecond)
	positive("retention", d.Retention.Hours())
	positive("kafka-retention", d.KafkaRetention.Hours())
	positive("cores-per-replica", d.CoresPerReplica)
	positive("clickhouse-cores", d.ClickHouseCores)
	positive("clickhouse-disk-gib", d.ClickHouseDiskGiB)
	positive("kafka-disk-gib", d.KafkaDiskGiB)
	positive("dedup-horizon", d.DedupHorizon.Hours())
	positive("dedup-bytes-per-id", d.DedupBytesPerID)
	if !(d.Headroom >= 1) {
		errs = append(errs, fmt.Errorf("--headroom: %v must be at least 1 (2 sizes for twice the average rate)", d.Headroom))
	}
	if !(d.DiskFill > 0 && d.DiskFill <= 1) {
		errs = append(errs, fmt.Errorf("--disk-fill: %v must be in (0, 1]", d.DiskFill))
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"series", d.Series}, {"min-replicas", d.MinReplicas}, {"clickhouse-replicas", d.ClickHouseReplicas}, {"kafka-replication", d.KafkaReplication}} {
		if v.n < 1 {
			errs = append(errs, fmt.Errorf("--%s: %d must be at least 1", v.name, v.n))
		}
	}
	return errors.Join(errs...)
}

// Plan is the sizing of one demand.
type Plan struct {
	Demand Demand `json:"-"`
	// Replicas and cores of the stages.
	IngestReplicas    int     `json:"ingest_replicas"`
	EnrichReplicas    int     `json:"enrich_replicas"`
	AggregateReplicas int     `json:"aggregate_replicas"`
	StageCores        float64 `json:"stage_cores"`
	// Partitions of every aivis topic.
	Partitions int `json:"partitions"`
	// ClickHouse: bytes of events and windows on one replica of the whole
	// data set, shards (by disk and by CPU) and nodes.
	EventsPerDay         float64 `json:"events_per_day"`
	WindowRowsPerDay     float64 `json:"window_rows_per_day"`
	ClickHouseBytes      float64 `json:"clickhouse_bytes_per_replica"`
	ShardsForDisk        int     `json:"shards_for_disk"`
	ShardsForCPU         int     `json:"shards_for_cpu"`
	Shards               int     `json:"shards"`
	ClickHouseNodes      int     `json:"clickhouse_nodes"`
	ClickHouseDiskPerGiB float64 `json:"clickhouse_disk_per_node_gib"`
	// Kafka: bytes on disk of all replicas, and brokers.
	KafkaBytes   float64 `json:"kafka_bytes"`
	KafkaBrokers int     `json:"kafka_brokers"`
	// StoragePerBillion is ClickHouse bytes (one replica, events only)
	// per 10^9 events; KafkaPerBillion the raw and enriched records of
	// 10^9 events on one replica.
	StoragePerBillion float64 `json:"clickhouse_bytes_per_billion_events"`
	KafkaPerBillion   float64 `json:"kafka_bytes_per_billion_events"`
	// Dedup: ids remembered over the horizon, memory in all, and per
	// aggregate replica with the dedup_memory_mib that holds them.
	DedupIDs             float64 `json:"dedup_ids"`
	DedupBytes           float64 `json:"dedup_bytes"`
	DedupIDsPerReplica   int64   `json:"dedup_ids_per_replica"`
	DedupBytesPerReplica float64 `json:"dedup_bytes_per_replica"`
	// DedupMemoryMiB is the aggregate.dedup_memory_mib that holds a
	// replica's whole horizon: its bytes and a tenth more.
	DedupMemoryMiB int64 `json:"dedup_memory_mib_per_replica"`
}

// Compute sizes d from in. Every rule is one line; docs/capacity.md
// states them.
func Compute(in Inputs, d Demand) (Plan, error) {
	if err := d.Validate(); err != nil {
		return Plan{}, err
	}
	if err := in.validate(); err != nil {
		return Plan{}, err
	}
	p := Plan{Demand: d}
	peak := d.EventsPerSecond * d.Headroom
	replicas := func(perCore float64) int {
		return max(d.MinReplicas, ceil(peak/(perCore*d.CoresPerReplica)))
	}
	p.IngestReplicas = replicas(in.IngestPerCore)
	p.EnrichReplicas = replicas(in.EnrichPerCore)
	p.AggregateReplicas = replicas(in.AggregatePerCore)
	p.StageCores = float64(p.IngestReplicas+p.EnrichReplicas+p.AggregateReplicas) * d.CoresPerReplica

	// Partitions: room for twice the consumer replicas without a topic
	// change, in multiples of 6 (the default), at least 6.
	p.Partitions = roundUp(max(6, 2*max(p.EnrichReplicas, p.AggregateReplicas)), 6)

	day := 86400.0
	days := d.Retention.Hours() / 24
	p.EventsPerDay = d.EventsPerSecond * day
	// Each series writes a row per window (a minute) for each partition
	// its events of that minute fall in: with e events spread over P
	// partitions, P·(1−(1−1/P)^e) partitions on average.
	perSeriesMinute := d.EventsPerSecond * 60 / float64(d.Series)
	parts := float64(p.Partitions)
	touched := parts * (1 - math.Pow(1-1/parts, perSeriesMinute))
	p.WindowRowsPerDay = float64(d.Series) * touched * 1440
	eventBytes := p.EventsPerDay * days * in.EventBytes
	p.ClickHouseBytes = eventBytes*(1+in.OtherBytesShare) + p.WindowRowsPerDay*days*in.WindowBytes
	usable := d.ClickHouseDiskGiB * gib * d.DiskFill
	p.ShardsForDisk = ceil(p.ClickHouseBytes / usable)
	p.ShardsForCPU = ceil(peak / (in.StoragePerCore * d.ClickHouseCores))
	p.Shards = max(1, p.ShardsForDisk, p.ShardsForCPU)
	p.ClickHouseNodes = p.Shards * d.ClickHouseReplicas
	p.ClickHouseDiskPerGiB = p.ClickHouseBytes / float64(p.Shards) / gib

	record := in.RawStoredBytes + in.EnrichedStoredBytes
	p.KafkaBytes = d.EventsPerSecond * d.KafkaRetention.Seconds() * record * float64(d.KafkaReplication)
	p.KafkaBrokers = max(d.KafkaReplication, ceil(p.KafkaBytes/(d.KafkaDiskGiB*gib*d.DiskFill)))

	p.StoragePerBillion = 1e9 * in.EventBytes
	p.KafkaPerBillion = 1e9 * record

	p.DedupIDs = d.EventsPerSecond * d.DedupHorizon.Seconds()
	p.DedupBytes = p.DedupIDs * d.DedupBytesPerID
	// A replica holds the ids of its partitions: ⌈P/R⌉ of P when the
	// partitions do not divide evenly.
	share := float64(ceil(parts/float64(p.AggregateReplicas))) / parts
	p.DedupIDsPerReplica = int64(math.Ceil(p.DedupIDs * share))
	p.DedupBytesPerReplica = float64(p.DedupIDsPerReplica) * d.DedupBytesPerID
	p.DedupMemoryMiB = int64(ceil(p.DedupBytesPerReplica * dedupMargin / (1 << 20)))
	return p, nil
}

const gib = 1 << 30

func ceil(x float64) int { return int(math.Ceil(x - 1e-9)) }

func roundUp(n, m int) int { return (n + m - 1) / m * m }

func (in Inputs) validate() error {
	var errs []error
	for _, v := range []struct {
		name string
		x    float64
	}{
		{"ingest events per core", in.IngestPerCore}, {"enrich events per core", in.EnrichPerCore},
		{"aggregate events per core", in.AggregatePerCore}, {"broker and ClickHouse events per core", in.StoragePerCore},
		{"bytes per event row", in.EventBytes}, {"bytes per window row", in.WindowBytes},
		{"raw record bytes stored", in.RawStoredBytes}, {"enriched record bytes stored", in.EnrichedStoredBytes},
	} {
		if !(v.x > 0) {
			errs = append(errs, fmt.Errorf("measured input %s is %v; it must be positive (rerun the benchmark or `aivis capacity measure`)", v.name, v.x))
		}
	}
	if in.OtherBytesShare < 0 {
		errs = append(errs, fmt.Errorf("measured input other tables share is %v; it must not be negative", in.OtherBytesShare))
	}
	return errors.Join(errs...)
}
