package aggregate

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
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
	stageHeld(b, evs)
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

// stageHeld replaces evs with the values the stage holds for the same
// records: encoded as enrich writes them, then decoded by a decoder set up
// as the stage's, which interns short strings (the events of one key
// share the memory of their names) and allocates as it does.
func stageHeld(b *testing.B, evs []*schemas.Enriched) {
	b.Helper()
	var dec schemas.Decoder
	dec.SkipCostLines, dec.LabelsAsJSON = true, true
	var buf []byte
	for i, e := range evs {
		buf = e.AppendJSON(buf[:0])
		held := new(schemas.Enriched)
		if err := dec.Enriched(buf, held); err != nil {
			b.Fatalf("decoding event %d as the stage does: %v", i, err)
		}
		evs[i] = held
	}
}

// BenchmarkAddBatchSealed is BenchmarkAddBatch in the steady state of a
// running aggregator: the partition remembers 24 h of ids at
// AIVISDEV_DEDUP_RATE events/s (200 by default, 17M ids, about 75 MiB,
// larger than the processor's caches), most of them sealed, so that every
// new id is probed in every chunk and bucket. Events arrive at the same
// rate of event time, so spans are sealed, hours merged and the oldest
// forgotten as the benchmark runs, as in production; each poll goes
// through Suspects, AddBatch and a flush, as in the stage.
//
// The sealed state is built from random fingerprints, a span at a time,
// through the same sealing code the engine uses: building it from ids
// would take minutes (see BenchmarkDedupState for that cost).
//
//	AIVISDEV_DEDUP_RATE=1000 go test -run '^$' -bench AddBatchSealed -benchtime 100x ./aggregate
func BenchmarkAddBatchSealed(b *testing.B) {
	rate := int64(200)
	if v := os.Getenv("AIVISDEV_DEDUP_RATE"); v != "" {
		var err error
		if rate, err = strconv.ParseInt(v, 10, 64); err != nil || rate <= 0 {
			b.Fatalf("AIVISDEV_DEDUP_RATE=%q: want events per second, e.g. 1000", v)
		}
	}
	const batch = 10_000
	cfg := DefaultConfig()
	e := NewEngine(cfg)
	defer e.Close()
	e.Assign(0, schemas.PartitionHistory{}, t0)
	d := e.parts[0].seen

	// 24 h of spans before t0, sealed one at a time; the last two spans
	// stay in the exact tier.
	r := rand.New(rand.NewPCG(1, 2))
	perSpan := rate * sealSpanMs / 1000
	start := t0.UnixMilli() - cfg.DedupHorizon.Milliseconds()
	for at := start; at < t0.UnixMilli(); at += sealSpanMs {
		if at+2*sealSpanMs >= t0.UnixMilli() {
			for i := range perSpan {
				d.add([2]uint64{r.Uint64(), r.Uint64()}, at+i*sealSpanMs/perSpan)
			}
			continue
		}
		c := &sealedChunk{fps: make([]uint64, perSpan), minMs: at, maxMs: at + sealSpanMs - 1}
		for i := range c.fps {
			c.fps[i] = r.Uint64()
		}
		slices.Sort(c.fps)
		c.offs, c.shift = prefixOffsets(c.fps)
		d.maxMs, d.hasMax = c.maxMs, true
		d.sealChunk(c)
	}
	d.nextSealMs = nextBoundary(d.maxMs, sealSpanMs)
	b.Logf("%d ids held (%d exact, %d sealed in %d buckets and %d chunks), %d MiB",
		d.Len(), d.exact.Len(), d.sealedN, len(d.buckets), len(d.chunks), d.Bytes()>>20)

	evs := make([]*schemas.Enriched, batch)
	for i := range evs {
		evs[i] = ev("s", t0, fmt.Sprintf("m%d", i%7), fmt.Sprintf("t%d", i%5), int64(i%5000), int64(i%700), int64(i)*1000)
	}
	stageHeld(b, evs)
	in := make([]Input, batch)
	var outcomes []Outcome
	step := time.Second / time.Duration(rate)
	var cpu time.Duration
	offset, n := int64(0), 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range in {
			ev := evs[j]
			ev.EventID = "s-" + strconv.FormatInt(offset, 10)
			ev.Time = t0.Add(time.Duration(offset) * step)
			in[j] = Input{Offset: offset, Event: ev}
			offset++
		}
		now := in[len(in)-1].Event.Time
		b.StartTimer()
		cpu0 := processCPU()
		ids, _, _ := e.Suspects(0, in)
		if len(ids) > 0 {
			e.Resolve(0, nil) // none stored: random fingerprints are no ids
		}
		outcomes = e.AddBatch(0, in, now, outcomes)
		for _, o := range outcomes {
			if o != Accepted {
				b.Fatalf("a new event %s", o)
			}
		}
		f := e.Flush(now, false)
		e.Ack(f)
		cpu += processCPU() - cpu0
		n += len(ids)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*batch), "cpu-ns/event")
	b.ReportMetric(float64(n)/float64(b.N*batch), "suspects/event")
	b.ReportMetric(float64(len(d.buckets)+len(d.chunks)), "sealed-units")
}

// processCPU is the user and system time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
