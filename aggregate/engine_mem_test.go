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

// TestDimIDsSurviveHashCollisions forces two dims onto one hash: each
// keeps its own id and its own row.
func TestDimIDsSurviveHashCollisions(t *testing.T) {
	e := NewEngine(testConfig())
	a := ev("a", t0, "m1", "team-a", 1, 1, 1)
	b := ev("b", t0, "m2", "team-b", 1, 1, 1)
	idA := e.dimID(a)
	// b's hash is taken by a's id, as a collision would have it.
	e.dimIDs[e.dimHash(dims{b.Provider, b.ModelID(), b.Owner.Team, b.Owner.Project})] = idA
	idB := e.dimID(b)
	if idB == idA {
		t.Fatalf("colliding dims share id %d", idA)
	}
	if again := e.dimID(b); again != idB {
		t.Fatalf("second lookup of the colliding dims: id %d, want %d", again, idB)
	}
	if again := e.dimID(a); again != idA {
		t.Fatalf("lookup of the first dims after the collision: id %d, want %d", again, idA)
	}
	if d := e.dimList[idB]; d.team != "team-b" || d.model != "m2" {
		t.Fatalf("id %d names %+v, want team-b/m2", idB, d)
	}
	c := ev("c", t0, "m3", "team-c", 1, 1, 1)
	if idC := e.dimID(c); idC == idA || idC == idB || len(e.dimMore) != 1 {
		t.Fatalf("a third dims: id %d (a %d, b %d), %d in dimMore, want a new id and 1", idC, idA, idB, len(e.dimMore))
	}
}

// TestDimIndexSize bounds what the engine holds per distinct key to find
// its id: the dims themselves (four string headers) and a hash slot.
func TestDimIndexSize(t *testing.T) {
	const keys = 100_000
	evs := make([]*schemas.Enriched, keys)
	for k := range evs {
		evs[k] = ev(fmt.Sprint("e", k), t0, fmt.Sprint("m", k%50), fmt.Sprint("t", k/50), 1, 1, 1)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	e := NewEngine(testConfig())
	for _, x := range evs {
		e.dimID(x)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(evs)
	perKey := (after.HeapAlloc - before.HeapAlloc) / keys
	t.Logf("dims index: %d bytes a key", perKey)
	// 64 bytes of dims in dimList (up to twice that while it grows by
	// doubling) and about 16 in the hash map; a map keyed by the dims took
	// 176 with dimList.
	if perKey > 140 || len(e.dimList) != keys || len(e.dimMore) != 0 {
		t.Fatalf("dims index: %d bytes a key for %d ids (%d colliding), want at most 140", perKey, len(e.dimList), len(e.dimMore))
	}
}
