package capacity

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Default places of the measured inputs, relative to the repository root.
const (
	DefaultBenchmarkPath = "benchmarks/results/latest.json"
	DefaultStoragePath   = "benchmarks/results/capacity.json"
)

// benchmark is the part of benchmarks/compare's JSON that sizing reads.
type benchmark struct {
	Machine struct {
		Cores     string `json:"cores"`
		GitCommit string `json:"git_commit"`
		Date      string `json:"date"`
	} `json:"machine"`
	Events       float64 `json:"events"`
	IngestPerSec float64 `json:"ingest_http_events_per_s"`
	E2E          struct {
		Seconds   float64 `json:"seconds"`
		Processes map[string]struct {
			CPUSeconds float64 `json:"cpu_seconds"`
		} `json:"processes"`
	} `json:"e2e_detail"`
	// StepCPU is what each step cost the machine; runs before the
	// harness measured it have none.
	StepCPU map[string]struct {
		Broker     float64 `json:"kafka_broker_cpu_seconds"`
		ClickHouse float64 `json:"clickhouse_server_cpu_seconds"`
	} `json:"step_cpu"`
}

// LoadInputs reads the benchmark run (benchmarks/compare's JSON) and the
// storage measurement (capacity/sample's JSON) and derives the inputs:
//
//   - enrich and aggregate: events of the end-to-end run ÷ the CPU
//     seconds their processes spent (so Kafka clients, decoding and
//     inserts are included);
//   - ingest: the HTTP ingest headline rate ÷ the machine's cores (ingest,
//     the broker and the clients shared them: a floor);
//   - broker and ClickHouse: events ÷ the CPU seconds the Kafka broker
//     and the ClickHouse server spent during the end-to-end step, as the
//     harness measured them; for a run without that measurement, events ÷
//     the CPU the machine had left (cores × seconds − enrich − aggregate),
//     an upper bound of their cost, so a floor of their rate;
//   - bytes per row of usage_events and cost_windows, the other tables'
//     share, and Kafka bytes per record: from the measurement.
func LoadInputs(benchmarkPath, storagePath string) (Inputs, error) {
	bench, err := os.ReadFile(benchmarkPath)
	if err != nil {
		return Inputs{}, fmt.Errorf("reading the benchmark results: %w (run `go run ./benchmarks/compare -out %s`)", err, benchmarkPath)
	}
	storage, err := os.ReadFile(storagePath)
	if err != nil {
		return Inputs{}, fmt.Errorf("reading the storage measurement: %w (run `aivis capacity measure --out %s`)", err, storagePath)
	}
	return ParseInputs(bench, storage, benchmarkPath, storagePath)
}

// ParseInputs is LoadInputs over the files' contents; the paths only name
// them in errors and in the inputs' sources.
func ParseInputs(bench, storage []byte, benchmarkPath, storagePath string) (Inputs, error) {
	var in Inputs
	var b benchmark
	if err := json.Unmarshal(bench, &b); err != nil {
		return in, fmt.Errorf("decoding the benchmark results %s: %w (run `go run ./benchmarks/compare -out %s`)", benchmarkPath, err, benchmarkPath)
	}
	var m Measurement
	if err := json.Unmarshal(storage, &m); err != nil {
		return in, fmt.Errorf("decoding the storage measurement %s: %w (run `aivis capacity measure --out %s`)", storagePath, err, storagePath)
	}
	cores, err := strconv.ParseFloat(strings.TrimSpace(b.Machine.Cores), 64)
	if err != nil || cores <= 0 {
		return in, fmt.Errorf("reading %s: machine.cores %q is not a number of cores", benchmarkPath, b.Machine.Cores)
	}
	var enrichCPU, aggregateCPU float64
	for name, p := range b.E2E.Processes {
		switch {
		case name == "enrich":
			enrichCPU += p.CPUSeconds
		case strings.HasPrefix(name, "aggregate"):
			aggregateCPU += p.CPUSeconds
		}
	}
	var errs []error
	if b.Events <= 0 || b.E2E.Seconds <= 0 || enrichCPU <= 0 || aggregateCPU <= 0 {
		errs = append(errs, fmt.Errorf("reading %s: events, e2e_detail.seconds and the CPU seconds of the enrich and aggregate processes must be positive (a run with the e2e step)", benchmarkPath))
	}
	if b.IngestPerSec <= 0 {
		errs = append(errs, fmt.Errorf("reading %s: ingest_http_events_per_s is missing (a run with the ingest step)", benchmarkPath))
	}
	left := cores*b.E2E.Seconds - enrichCPU - aggregateCPU
	if c, ok := b.StepCPU["e2e"]; ok && c.Broker > 0 && c.ClickHouse > 0 {
		left = c.Broker + c.ClickHouse
	}
	if left <= 0 {
		errs = append(errs, fmt.Errorf("reading %s: enrich and aggregate used all of the %v cores × %.1f s; the broker and ClickHouse cost cannot be bounded", benchmarkPath, cores, b.E2E.Seconds))
	}
	if err := errors.Join(errs...); err != nil {
		return in, err
	}
	in.EnrichPerCore = b.Events / enrichCPU
	in.AggregatePerCore = b.Events / aggregateCPU
	in.IngestPerCore = b.IngestPerSec / cores
	in.StoragePerCore = b.Events / left

	ev, win := m.Table(EventsTable), m.Table(WindowsTable)
	if ev.Rows == 0 || win.Rows == 0 {
		return in, fmt.Errorf("reading %s: no rows measured for %s or %s", storagePath, EventsTable, WindowsTable)
	}
	in.EventBytes, in.WindowBytes = ev.BytesPerRow, win.BytesPerRow
	var other uint64
	for _, t := range m.Tables {
		if t.Table != EventsTable && t.Table != WindowsTable && t.Table != MigrationsTable {
			other += t.BytesOnDisk
		}
	}
	in.OtherBytesShare = float64(other) / float64(ev.BytesOnDisk)
	in.RawRecordBytes, in.EnrichedRecordBytes = m.RawRecordBytes, m.EnrichedRecordBytes
	in.RawStoredBytes, in.EnrichedStoredBytes = m.RawStoredBytes, m.EnrichedStoredBytes
	in.KafkaCompression = m.KafkaCompression
	in.Sources = []string{
		fmt.Sprintf("%s: %s events at %s (%s), %v cores", benchmarkPath, strconv.FormatFloat(b.Events, 'f', -1, 64), b.Machine.Date, short(b.Machine.GitCommit), cores),
		fmt.Sprintf("%s: %d events on ClickHouse %s at %s", storagePath, m.Events, m.ClickHouse, m.Date.Format("2006-01-02T15:04:05Z")),
	}
	return in, in.validate()
}

func short(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}
