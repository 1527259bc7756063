package capacity

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadInputs(t *testing.T) {
	in, err := LoadInputs("testdata/latest.json", "testdata/capacity.json")
	if err != nil {
		t.Fatal(err)
	}
	// 1M events: enrich spent 20 CPU-s, the two aggregators 20; ingest
	// 90k/s on 2 cores; 2 cores × 40 s − 40 s left 40 s for the rest.
	// Other tables: cost_anomalies' 6,000 B of usage_events' 120,000
	// (the migrations table does not count).
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"enrich per core", in.EnrichPerCore, 50_000}, {"aggregate per core", in.AggregatePerCore, 50_000},
		{"ingest per core", in.IngestPerCore, 45_000}, {"storage per core", in.StoragePerCore, 25_000},
		{"event bytes", in.EventBytes, 120}, {"window bytes", in.WindowBytes, 150}, {"other share", in.OtherBytesShare, 0.05},
		{"raw record bytes", in.RawRecordBytes, 600}, {"enriched record bytes", in.EnrichedRecordBytes, 1400},
		{"raw stored bytes", in.RawStoredBytes, 300}, {"enriched stored bytes", in.EnrichedStoredBytes, 700},
	} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if len(in.Sources) != 2 || !strings.Contains(in.Sources[0], "4297865") || !strings.Contains(in.Sources[1], "18.16.1") {
		t.Errorf("sources = %q, want the benchmark's commit and the measurement's server", in.Sources)
	}
}

func TestLoadInputsErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, bench, storage, want string
	}{
		{"no benchmark", filepath.Join(dir, "none.json"), "testdata/capacity.json", "go run ./benchmarks/compare"},
		{"no measurement", "testdata/latest.json", filepath.Join(dir, "none.json"), "aivis capacity measure"},
		{"no e2e step", write("noe2e.json", `{"machine": {"cores": "2"}, "events": 10, "ingest_http_events_per_s": 5}`), "testdata/capacity.json", "e2e step"},
		{"bad cores", write("cores.json", `{"machine": {"cores": "two"}}`), "testdata/capacity.json", "machine.cores"},
		{"broken JSON", write("broken.json", `{`), "testdata/capacity.json", "decoding"},
		{"empty tables", "testdata/latest.json", write("empty.json", `{"tables": []}`), "no rows measured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadInputs(tc.bench, tc.storage)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzParseInputs: any pair of files gives usable inputs or an error,
// never a panic, and never inputs that Compute would reject.
func FuzzParseInputs(f *testing.F) {
	bench, err := os.ReadFile("testdata/latest.json")
	if err != nil {
		f.Fatal(err)
	}
	storage, err := os.ReadFile("testdata/capacity.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bench, storage)
	f.Add([]byte(`{"machine": {"cores": "-2"}, "events": 1e308, "e2e_detail": {"seconds": 1e-300}}`), storage)
	f.Add(bench, []byte(`{"tables": [{"table": "usage_events", "rows": 1}, {"table": "cost_windows", "rows": 1}]}`))
	f.Fuzz(func(t *testing.T, bench, storage []byte) {
		in, err := ParseInputs(bench, storage, "b.json", "s.json")
		if err != nil {
			return
		}
		d := DefaultDemand()
		d.EventsPerSecond, d.Retention = 1000, 24*time.Hour
		if _, err := Compute(in, d); err != nil {
			t.Errorf("ParseInputs accepted inputs that Compute rejects: %v", err)
		}
	})
}

// TestLoadInputsMeasuredStorage: a run whose harness measured the broker's
// and ClickHouse's CPU during the e2e step sizes them from that, not from
// what the machine had left.
func TestLoadInputsMeasuredStorage(t *testing.T) {
	bench := []byte(`{"machine": {"cores": "2", "date": "2026-11-29T13:42:26Z", "git_commit": "d624ab4"}, "events": 1000000,
		"ingest_http_events_per_s": 90000,
		"e2e_detail": {"seconds": 40, "processes": {"enrich": {"cpu_seconds": 20}, "aggregate-0": {"cpu_seconds": 20}}},
		"step_cpu": {"e2e": {"kafka_broker_cpu_seconds": 10, "clickhouse_server_cpu_seconds": 15}, "naive": {"kafka_broker_cpu_seconds": 1, "clickhouse_server_cpu_seconds": 1}}}`)
	storage, err := os.ReadFile("testdata/capacity.json")
	if err != nil {
		t.Fatal(err)
	}
	in, err := ParseInputs(bench, storage, "latest.json", "capacity.json")
	if err != nil {
		t.Fatal(err)
	}
	// 1M events over 10 + 15 CPU-s, not over the 40 s the machine had left.
	if in.StoragePerCore != 40_000 {
		t.Errorf("storage per core = %v, want 40000", in.StoragePerCore)
	}
}
