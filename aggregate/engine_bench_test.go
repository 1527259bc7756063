package aggregate

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// BenchmarkAddBatch measures classifying, deduplicating and folding one
// poll of 10,000 events (Arrow batch build plus columnar aggregation) and
// flushing the closed windows, per event. The dedup set is at its steady
// state, as in a running aggregator: full, so that every id added makes
// the oldest one leave (MaxDedupEntries below the 40,000 distinct ids, so
// an id has left before it comes round again and stays a first
// occurrence).
func BenchmarkAddBatch(b *testing.B) {
	const batch = 10_000
	cfg := DefaultConfig()
	cfg.MaxDedupEntries = 3 * batch
	evs := make([]*schemas.Enriched, batch*4)
	for i := range evs {
		evs[i] = ev(fmt.Sprintf("b-%d", i), t0.Add(time.Duration(i)*5*time.Millisecond),
			fmt.Sprintf("m%d", i%7), fmt.Sprintf("t%d", i%5), int64(i%5000), int64(i%700), int64(i)*1000)
	}
	e := NewEngine(cfg)
	defer e.Close()
	e.Assign(0, schemas.PartitionHistory{}, t0)
	in := make([]Input, batch)
	var outcomes []Outcome
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	offset := int64(0)
	for i := 0; i < b.N; i++ {
		for j := range in {
			k := (i*batch + j) % len(evs)
			in[j] = Input{Offset: offset, Event: evs[k]}
			offset++
		}
		// As the stage does before every AddBatch: with no sealed tier
		// (this state is all exact) it asks the sink nothing.
		if ids, _, _ := e.Suspects(0, in); len(ids) > 0 {
			b.Fatalf("%d suspects without a sealed tier", len(ids))
		}
		outcomes = e.AddBatch(0, in, t0, outcomes)
		f := e.Flush(t0, false)
		e.Ack(f)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
	// CPU time of the whole process (collector included) is steadier than
	// wall time on a shared machine.
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N*batch), "cpu-ns/event")
}

// processCPU is the user and system time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
