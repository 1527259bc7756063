package capacity

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// fixedInputs are round figures, so that every expected value below is
// worked out by hand.
var fixedInputs = Inputs{
	IngestPerCore: 50_000, EnrichPerCore: 50_000, AggregatePerCore: 40_000, StoragePerCore: 30_000,
	EventBytes: 100, WindowBytes: 200, OtherBytesShare: 0.1,
	RawRecordBytes: 600, EnrichedRecordBytes: 1400, RawStoredBytes: 300, EnrichedStoredBytes: 700,
}

func fixedDemand(eventsPerSecond float64) Demand {
	return Demand{
		EventsPerSecond: eventsPerSecond, Retention: 30 * 24 * time.Hour, KafkaRetention: 7 * 24 * time.Hour,
		Headroom: 2, Series: 100, CoresPerReplica: 2, MinReplicas: 2,
		ClickHouseReplicas: 2, ClickHouseCores: 16, ClickHouseDiskGiB: 1000,
		KafkaReplication: 3, KafkaDiskGiB: 1000, DiskFill: 0.5,
		DedupHorizon: 24 * time.Hour, DedupBytesPerID: 5,
	}
}

func TestCompute(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Inputs
		d    Demand
		want Plan
	}{{
		// Peak 20,000 events/s: every stage fits in one 2-core replica,
		// so the minimum of 2 each; 6 partitions. Events: 864M a day ×
		// 30 days × 100 B = 2.592 TB, +10 % other tables = 2.8512 TB;
		// windows: 6,000 events per series-minute touch all 6
		// partitions: 100 × 6 × 1440 = 864,000 rows a day × 30 × 200 B =
		// 5.184 GB; 2.856384 TB over 500 GiB usable = 5.32 → 6 shards.
		// Kafka: 10,000/s × 604,800 s × 1,000 B stored × 3 = 18.144 TB
		// over 500 GiB = 33.8 → 34 brokers. Dedup: 864M ids × 5 B, half per
		// replica: 2.16e9 B × 1.1 = 2265.97 MiB → dedup_memory_mib 2266.
		name: "10k events/s",
		in:   fixedInputs, d: fixedDemand(10_000),
		want: Plan{
			IngestReplicas: 2, EnrichReplicas: 2, AggregateReplicas: 2, StageCores: 12, Partitions: 6,
			EventsPerDay: 864e6, WindowRowsPerDay: 864_000, ClickHouseBytes: 2.856384e12,
			ShardsForDisk: 6, ShardsForCPU: 1, Shards: 6, ClickHouseNodes: 12, ClickHouseDiskPerGiB: 2.856384e12 / 6 / (1 << 30),
			KafkaBytes: 1.8144e13, KafkaBrokers: 34, StoragePerBillion: 1e11, KafkaPerBillion: 1e12,
			DedupIDs: 864e6, DedupBytes: 4.32e9, DedupIDsPerReplica: 432e6, DedupBytesPerReplica: 2.16e9, DedupMemoryMiB: 2266,
		},
	}, {
		// Peak 400,000/s: ingest and enrich 400k/100k = 4 replicas,
		// aggregate 400k/80k = 5; partitions 2 × 5 = 10 → 12. Five
		// replicas over 12 partitions: the busiest holds 3, a quarter of
		// the 17.28G ids. Storage CPU: 400k / (30k × 16) = 0.83 → 1 shard.
		name: "uneven partitions",
		in:   fixedInputs, d: fixedDemand(200_000),
		want: Plan{
			IngestReplicas: 4, EnrichReplicas: 4, AggregateReplicas: 5, StageCores: 26, Partitions: 12,
			DedupIDs: 1.728e10, DedupIDsPerReplica: 4.32e9, ShardsForCPU: 1,
		},
	}, {
		// A million series at 1,000 events/s: 0.06 events per
		// series-minute, which touch 6·(1−(5/6)^0.06) = 0.0652781
		// partitions: 94,000,409 window rows a day, more than the 86.4M
		// events.
		name: "sparse series",
		in:   fixedInputs,
		d:    func() Demand { d := fixedDemand(1000); d.Series = 1_000_000; return d }(),
		want: Plan{IngestReplicas: 2, EnrichReplicas: 2, AggregateReplicas: 2, Partitions: 6, WindowRowsPerDay: 94_000_408.614},
	}, {
		// ClickHouse CPU decides: 30,000 events/s a core, 4-core nodes,
		// peak 1M/s → 1M / 120k = 8.33 → 9 shards.
		name: "shards for CPU",
		in:   fixedInputs,
		d: func() Demand {
			d := fixedDemand(500_000)
			d.ClickHouseCores, d.Retention, d.ClickHouseDiskGiB = 4, 24*time.Hour, 1e6
			return d
		}(),
		want: Plan{ShardsForDisk: 1, ShardsForCPU: 9, Shards: 9, ClickHouseNodes: 18},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Compute(tc.in, tc.d)
			if err != nil {
				t.Fatal(err)
			}
			// Compare only the fields the case sets (the JSON of want
			// without its zero values).
			wantJSON, _ := json.Marshal(tc.want)
			var want map[string]float64
			if err := json.Unmarshal(wantJSON, &want); err != nil {
				t.Fatal(err)
			}
			gotJSON, _ := json.Marshal(got)
			var have map[string]float64
			if err := json.Unmarshal(gotJSON, &have); err != nil {
				t.Fatal(err)
			}
			for k, w := range want {
				if w == 0 {
					continue
				}
				if g := have[k]; math.Abs(g-w) > 1e-6*math.Abs(w) {
					t.Errorf("%s = %v, want %v", k, g, w)
				}
			}
		})
	}
}

func TestComputeRejects(t *testing.T) {
	d := fixedDemand(0)
	d.Headroom, d.DiskFill, d.Series = 0.5, 1.5, 0
	_, err := Compute(fixedInputs, d)
	if err == nil {
		t.Fatal("no error for a zero rate, headroom 0.5, disk fill 1.5 and no series")
	}
	for _, want := range []string{"--events-per-second", "--headroom", "--disk-fill", "--series"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	in := fixedInputs
	in.EventBytes = 0
	if _, err := Compute(in, fixedDemand(1000)); err == nil || !strings.Contains(err.Error(), "aivis capacity measure") {
		t.Errorf("a missing measured input: %v, want an error that says how to measure it", err)
	}
}

func TestWrite(t *testing.T) {
	var plans []Plan
	for _, r := range []float64{1000, 10_000} {
		p, err := Compute(fixedInputs, fixedDemand(r))
		if err != nil {
			t.Fatal(err)
		}
		plans = append(plans, p)
	}
	var b bytes.Buffer
	if err := Write(&b, fixedInputs, plans, "table"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1,000 events/s", "10,000 events/s", "partitions per topic", "2.6 TiB", "93.1 GiB", "dedup_memory_mib per replica", "2266"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := Write(&b, fixedInputs, plans, "json"); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Plans []struct {
			Demand struct {
				EventsPerSecond float64 `json:"events_per_second"`
			} `json:"demand"`
			Shards int `json:"shards"`
		} `json:"plans"`
	}
	if err := json.Unmarshal(b.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Plans) != 2 || res.Plans[1].Demand.EventsPerSecond != 10_000 || res.Plans[1].Shards != 6 {
		t.Errorf("JSON plans = %+v, want 1,000 and 10,000 events/s, the second with 6 shards", res.Plans)
	}
}
