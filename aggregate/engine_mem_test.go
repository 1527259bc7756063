package aggregate

import (
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// TestLatencyBucketMatchesDefinition checks the table lookup against
// ceil(4·log2(ms)) for every latency up to past the last bucket's bound.
func TestLatencyBucketMatchesDefinition(t *testing.T) {
	limit := latencyBucketMax[schemas.LatencyBuckets-2] + 1<<20
	for ms := int64(-3); ms <= limit; ms++ {
		want := min(latencyBucketLog(ms), schemas.LatencyBuckets-1)
		if got := LatencyBucket(ms); got != want {
			t.Fatalf("LatencyBucket(%d) = %d, want %d", ms, got, want)
		}
	}
	for _, ms := range []int64{1 << 40, math.MaxInt64} {
		if got := LatencyBucket(ms); got != schemas.LatencyBuckets-1 {
			t.Fatalf("LatencyBucket(%d) = %d, want the last bucket", ms, got)
		}
	}
}

func TestHistogramMatchesDense(t *testing.T) {
	for _, seq := range [][]int{
		{40}, {40, 41, 39, 30, 60, 95, 0}, {0, 95}, {95, 0}, {10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
		{50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 90, 12},
	} {
		var h histogram
		var dense [schemas.LatencyBuckets]uint64
		for _, b := range seq {
			h.add(b)
			dense[b]++
		}
		want := dense[:]
		for len(want) > 0 && want[len(want)-1] == 0 {
			want = want[:len(want)-1]
		}
		got := make([]uint64, h.size())
		h.fill(got)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%v: histogram %v, want %v", seq, got, want)
		}
	}
}

// keysEngine loads an engine with keys distinct (provider, model, team,
// project) series, each with two events in each of two open windows, and
// returns it with the heap it added.
func keysEngine(tb testing.TB, keys int) (*Engine, uint64) {
	const parts = 4
	evs := make([]*schemas.Enriched, 0, 4*keys)
	for w := range 2 {
		for k := range keys {
			for j := range 2 {
				at := t0.Add(time.Duration(w)*time.Minute + time.Duration(j)*time.Second)
				e := ev(fmt.Sprintf("k%d-w%d-%d", k, w, j), at, fmt.Sprintf("m%d", k%50), fmt.Sprintf("t%d", k/50), 1000, 200, 5000)
				lat := int64(80 + 40*j + k%300) // a few buckets per key
				e.LatencyMs = &lat
				evs = append(evs, e)
			}
		}
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	cfg := DefaultConfig()
	cfg.AllowedLateness = time.Hour // keep both windows open
	e := NewEngine(cfg)
	for p := range parts {
		e.Assign(int32(p), schemas.PartitionHistory{}, t0)
	}
	var outcomes []Outcome
	in := make([]Input, 0, 10_000)
	for i := 0; i < len(evs); i += cap(in) {
		in = in[:0]
		for j, x := range evs[i:min(i+cap(in), len(evs))] {
			in = append(in, Input{Offset: int64(i + j), Event: x})
		}
		outcomes = e.AddBatch(int32((i/cap(in))%parts), in, t0, outcomes)
	}
	// What stays between flushes: windows and dedup state, not the
	// pending events the sink takes at once.
	e.Ack(e.Flush(t0, false))
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(evs)
	if st := e.Stats(); st.OpenWindows == 0 || st.PendingEvents != 0 {
		tb.Fatalf("stats %+v: want open windows and nothing pending", st)
	}
	return e, after.HeapAlloc - before.HeapAlloc
}

// TestMemoryAt100kKeys bounds the engine's heap with 100,000 series open
// in two windows each (200,000 accumulators) and 400,000 remembered ids
// (events are the caller's and not counted). The target is under 1 GiB
// for the process; the engine's part must stay well below.
func TestMemoryAt100kKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 400,000 events")
	}
	const keys = 100_000
	e, heap := keysEngine(t, keys)
	defer e.Close()
	t.Logf("engine heap with %d keys in 2 windows: %d MiB, %d bytes/key", keys, heap>>20, heap/keys)
	if heap > 256<<20 {
		t.Fatalf("engine heap %d MiB with %d keys, want under 256 MiB", heap>>20, keys)
	}

	// All 200,000 accumulators closing at once (the idle timeout) are
	// emitted over several flushes; what one flush holds is its rows and
	// their histograms, at most maxFlushRows of them (about 500 bytes
	// each) or one partition's window (25,000 here), not 100 MB.
	var flushes, rows int
	var most uint64
	for more := true; more; flushes++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f := e.Flush(t0, true)
		runtime.GC()
		runtime.ReadMemStats(&after)
		windows := map[[2]int64]bool{}
		for _, r := range f.Rows {
			windows[[2]int64{int64(r.SrcPartition), r.WindowStart.Unix()}] = true
		}
		if len(f.Rows) > maxFlushRows && len(windows) > 1 {
			t.Fatalf("flush %d: %d rows of %d windows, want at most %d or one window", flushes, len(f.Rows), len(windows), maxFlushRows)
		}
		if after.HeapAlloc > before.HeapAlloc {
			most = max(most, after.HeapAlloc-before.HeapAlloc)
		}
		rows += len(f.Rows)
		e.Ack(f)
		more = f.More
	}
	t.Logf("%d rows in %d flushes, at most %d MiB held by one", rows, flushes, most>>20)
	if rows != 2*keys || most > 16<<20 {
		t.Fatalf("%d rows in %d flushes, one holding up to %d MiB: want %d rows, at most 16 MiB a flush", rows, flushes, most>>20, 2*keys)
	}
}

// BenchmarkMemoryPerKey reports the engine's heap per open series (two
// windows each, with their dedup entries).
func BenchmarkMemoryPerKey(b *testing.B) {
	const keys = 100_000
	for range b.N {
		e, heap := keysEngine(b, keys)
		e.Close()
		b.ReportMetric(float64(heap)/keys, "heap-bytes/key")
	}
}
