package aggregate

import (
	"hash/maphash"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"
)

// BenchmarkDedupState builds the dedup state of one partition holding a
// 24 h horizon at AIVISDEV_DEDUP_RATE events/s (100 by default, 8.6M ids;
// 10000 is the full 864M-id target, about 4 GiB and three minutes), after
// 25 h of event time so that expiry runs, then measures lookups: of ids
// never seen (every new event: all tiers probed) and of ids sealed 12 h
// earlier (a late duplicate). It reports the state's bytes per id and in
// all, and the build's cost per id, which is what restoring a partition
// from ClickHouse costs in the aggregator on top of the read.
//
//	AIVISDEV_DEDUP_RATE=10000 go test -run '^$' -bench DedupState -benchtime 2000000x -timeout 30m ./aggregate
func BenchmarkDedupState(b *testing.B) {
	rate := int64(100)
	if v := os.Getenv("AIVISDEV_DEDUP_RATE"); v != "" {
		var err error
		if rate, err = strconv.ParseInt(v, 10, 64); err != nil || rate <= 0 {
			b.Fatalf("AIVISDEV_DEDUP_RATE=%q: want events per second, e.g. 10000", v)
		}
	}
	const horizon = 24 * time.Hour
	total := rate * int64((horizon + time.Hour).Seconds())
	// The state is large and pointer-free: collect often rather than let
	// the heap double before each collection.
	gcPercent := debug.SetGCPercent(10)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	d := newDedupTiers(0)
	buf := make([]byte, 0, 32)
	id := func(prefix string, i int64) []byte {
		return strconv.AppendInt(append(buf[:0], prefix...), i, 10)
	}
	start := time.Now()
	for i := range total {
		k := id("ev-", i)
		fp := [2]uint64{maphash.Bytes(d.exact.seed0, k), maphash.Bytes(d.exact.seed1, k)}
		d.add(fp, i*1000/rate)
		if d.due() {
			d.seal()
			d.expire(d.maxMs - horizon.Milliseconds())
		}
	}
	build := time.Since(start)
	debug.SetGCPercent(gcPercent)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	n := d.Len()
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	b.Logf("rate %d/s: %d ids held (%d exact, %d sealed in %d buckets and %d chunks), %d MiB by array sizes (%.2f bytes/id), heap %d MiB, built in %s (%.0f ns/id)",
		rate, n, d.exact.Len(), d.sealedN, len(d.buckets), len(d.chunks), d.Bytes()>>20, float64(d.Bytes())/float64(n),
		heap>>20, build.Round(time.Millisecond), float64(build.Nanoseconds())/float64(total))

	report := func(b *testing.B) {
		b.ReportMetric(float64(n), "ids")
		b.ReportMetric(float64(d.Bytes())/float64(n), "bytes/id")
		b.ReportMetric(float64(d.Bytes())/(1<<20), "state-MiB")
		b.ReportMetric(float64(build.Nanoseconds())/float64(total), "build-ns/id")
	}
	b.Run("lookup=new", func(b *testing.B) {
		b.ResetTimer()
		for i := range b.N {
			if _, hit, _, _ := d.lookup(string(id("new-", int64(i)))); hit == hitExact {
				b.Fatal("a new id found in the exact tier")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/lookup")
		report(b)
	})
	b.Run("lookup=sealed-12h", func(b *testing.B) {
		first := total - rate*12*3600
		b.ResetTimer()
		for i := range b.N {
			if _, hit, _, _ := d.lookup(string(id("ev-", first+int64(i)%(rate*3600)))); hit != hitSealed {
				b.Fatal("an id of 12 h ago not in a sealed tier")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/lookup")
		report(b)
	})
	runtime.KeepAlive(d)
}
