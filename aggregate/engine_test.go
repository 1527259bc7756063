package aggregate

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func testConfig() Config {
	c := DefaultConfig()
	c.OutOfOrder = 5 * time.Second
	c.AllowedLateness = 30 * time.Second
	c.LateHorizon = 10 * time.Minute
	c.IdleTimeout = time.Hour
	return c
}

func ev(id string, at time.Time, model, team string, in, out, cost int64) *schemas.Enriched {
	lat := int64(100)
	return &schemas.Enriched{
		Event: schemas.Event{
			SchemaVersion: "1", EventID: id, Time: at, Kind: schemas.KindLLMRequest, Source: "t",
			Provider: "openai", Model: model, Status: schemas.StatusOK, LatencyMs: &lat,
			Usage: &schemas.Usage{InputTokens: schemas.Int64(in), OutputTokens: schemas.Int64(out)},
		},
		Owner:     schemas.Owner{Team: team, Project: "p"},
		CostPicos: cost,
	}
}

// memSink mimics the ClickHouse tables: events replace by event id, rows
// replace by their full key.
type memSink struct {
	events map[string]schemas.StoredEvent
	rows   map[string]schemas.WindowRow
}

func newMemSink() *memSink {
	return &memSink{events: map[string]schemas.StoredEvent{}, rows: map[string]schemas.WindowRow{}}
}

func rowKey(r schemas.WindowRow) string {
	return fmt.Sprintf("%d|%s|%s|%s|%s|%d|%d", r.WindowStart.Unix(), r.Provider, r.Model, r.Team, r.Project, r.SrcPartition, r.ThroughOffset)
}

func (m *memSink) write(f *Flush) {
	for _, e := range f.Events {
		m.events[e.Event.EventID] = e
	}
	for _, r := range f.Rows {
		m.rows[rowKey(r)] = r
	}
}

func (m *memSink) history(p int32, restart int64) schemas.PartitionHistory {
	h := schemas.PartitionHistory{Emitted: map[int64]int64{}}
	for _, r := range m.rows {
		if r.SrcPartition == p && r.ThroughOffset > h.Emitted[r.WindowStart.Unix()] {
			h.Emitted[r.WindowStart.Unix()] = r.ThroughOffset
		}
	}
	for _, e := range m.events {
		if e.Partition == p && e.Offset < restart {
			h.SeenIDs = append(h.SeenIDs, schemas.SeenID{ID: e.Event.EventID, Time: e.Event.Time})
		}
	}
	return h
}

type total struct {
	requests      uint64
	input, output int64
	cost          schemas.Picos128
}

func (m *memSink) totals() map[string]total {
	out := map[string]total{}
	for _, r := range m.rows {
		k := fmt.Sprintf("%d|%s|%s", r.WindowStart.Unix(), r.Model, r.Team)
		t := out[k]
		t.requests += r.Requests
		t.input += r.InputTokens
		t.output += r.OutputTokens
		t.cost = t.cost.Plus(r.CostPicos)
		out[k] = t
	}
	return out
}

func groundTruth(cfg Config, evs []*schemas.Enriched) map[string]total {
	seen := map[string]bool{}
	out := map[string]total{}
	for _, e := range evs {
		if seen[e.EventID] {
			continue
		}
		seen[e.EventID] = true
		ws := e.Time.Truncate(cfg.Window).Unix()
		k := fmt.Sprintf("%d|%s|%s", ws, e.Model, e.Owner.Team)
		t := out[k]
		t.requests++
		t.input += *e.Usage.InputTokens
		t.output += *e.Usage.OutputTokens
		t.cost = t.cost.Add(e.CostPicos)
		out[k] = t
	}
	return out
}

func TestEngineCountsDuplicatesOnceAndLateEventsInTheirWindow(t *testing.T) {
	cfg := testConfig()
	e := NewEngine(cfg)
	defer e.Close()
	e.Assign(0, schemas.PartitionHistory{}, t0)
	in := []Input{
		{0, ev("a", t0.Add(1*time.Second), "m1", "t1", 10, 5, 100)},
		{1, ev("b", t0.Add(70*time.Second), "m1", "t1", 20, 5, 200)},
		{2, ev("a", t0.Add(1*time.Second), "m1", "t1", 10, 5, 100)},  // duplicate
		{3, ev("c", t0.Add(50*time.Second), "m1", "t1", 30, 5, 300)}, // out of order, same window as a
		{4, ev("d", t0.Add(3*time.Minute), "m2", "t2", 1, 1, 1)},     // closes window 0 and 1
		{5, ev("e", t0.Add(2*time.Second), "m1", "t1", 40, 5, 400)},  // late: window 0 already closable
		{6, ev("f", t0.Add(-time.Hour), "m1", "t1", 1, 1, 1)},        // past the late horizon
	}
	outcomes := e.AddBatch(0, in, t0, nil)
	want := []Outcome{Accepted, Accepted, Duplicate, Accepted, Accepted, Accepted, TooLate}
	for i := range want {
		if outcomes[i] != want[i] {
			t.Fatalf("event %d: outcome %s, want %s", i, outcomes[i], want[i])
		}
	}
	f := e.Flush(t0, false)
	sink := newMemSink()
	sink.write(f)
	e.Ack(f)
	got := sink.totals()
	w0 := fmt.Sprintf("%d|m1|t1", t0.Unix())
	if g := got[w0]; g.requests != 3 || g.input != 80 || g.cost != schemas.PicosOf(800) {
		t.Fatalf("window 0 = %+v, want 3 requests, 80 input, 800 picos", g)
	}
	if off, _ := e.CommitOffset(0); off != 4 {
		t.Fatalf("commit offset = %d, want 4 (event d's window is open)", off)
	}
	// A late event after the window was emitted becomes a correction row.
	e.AddBatch(0, []Input{{7, ev("g", t0.Add(3*time.Second), "m1", "t1", 5, 5, 50)}}, t0, nil)
	f = e.Flush(t0, false)
	sink.write(f)
	e.Ack(f)
	if g := sink.totals()[w0]; g.requests != 4 || g.cost != schemas.PicosOf(850) {
		t.Fatalf("after correction window 0 = %+v, want 4 requests, 850 picos", g)
	}
}

// TestFutureEventLeavesTheWatermark: one event dated days ahead of the
// processing clock must not make the current events of its partition too
// late; it is classified Future (dead-lettered by the stage), not
// remembered, and counts once its time has come.
func TestFutureEventLeavesTheWatermark(t *testing.T) {
	cfg := testConfig()
	e := NewEngine(cfg)
	defer e.Close()
	e.Assign(0, schemas.PartitionHistory{}, t0)
	in := []Input{
		{0, ev("now-1", t0, "m1", "t1", 1, 1, 10)},
		{1, ev("ahead", t0.Add(48*time.Hour), "m1", "t1", 1, 1, 10)},
		{2, ev("edge", t0.Add(cfg.MaxFuture), "m1", "t1", 1, 1, 10)}, // exactly at the bound: counts
	}
	for i := 0; i < 100; i++ {
		in = append(in, Input{int64(3 + i), ev(fmt.Sprintf("cur-%d", i), t0.Add(time.Duration(i)*time.Second), "m1", "t1", 1, 1, 10)})
	}
	outcomes := e.AddBatch(0, in, t0, nil)
	for i, o := range outcomes {
		want := Accepted
		if i == 1 {
			want = Future
		}
		if o != want {
			t.Fatalf("event %d (%s): outcome %s, want %s", i, in[i].Event.EventID, o, want)
		}
	}
	if wm, want := e.Watermark(0), t0.Add(cfg.MaxFuture-cfg.OutOfOrder); !wm.Equal(want) {
		t.Errorf("watermark %s, want %s: the future event moved it", wm, want)
	}
	f := e.Flush(t0, true)
	if len(f.Events) != 102 {
		t.Errorf("%d events to store, want 102", len(f.Events))
	}
	e.Ack(f)
	// Two days later the same event is current: it was not remembered, so
	// it counts.
	later := t0.Add(48 * time.Hour)
	if o := e.AddBatch(0, []Input{{103, in[1].Event}}, later, nil); o[0] != Accepted {
		t.Errorf("the future event resent when current: %s, want accepted", o[0])
	}
}

func TestLatencyBucket(t *testing.T) {
	for _, c := range []struct {
		ms   int64
		want int
	}{{0, 0}, {1, 0}, {2, 4}, {3, 7}, {1000, 40}, {1 << 40, schemas.LatencyBuckets - 1}} {
		if got := LatencyBucket(c.ms); got != c.want {
			t.Errorf("LatencyBucket(%d) = %d, want %d", c.ms, got, c.want)
		}
	}
}

// TestCrashAndReplayAreExact runs a partitioned stream through engines
// that crash at random points, restart from the committed offset with the
// sink's history, and are sometimes reset to offset 0. Totals must equal
// the ground truth every time.
func TestCrashAndReplayAreExact(t *testing.T) {
	cfg := testConfig()
	cfg.MaxFuture = time.Hour // the processing clock stays at t0 while event time runs minutes ahead
	for seed := uint64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		const parts = 3
		logs := make([][]*schemas.Enriched, parts)
		var all []*schemas.Enriched
		clock := t0
		for i := 0; i < 600; i++ {
			clock = clock.Add(time.Duration(rng.IntN(800)) * time.Millisecond)
			at := clock.Add(-time.Duration(rng.IntN(4000)) * time.Millisecond)
			if rng.IntN(30) == 0 {
				at = clock.Add(-time.Duration(40+rng.IntN(120)) * time.Second) // late
			}
			id := fmt.Sprintf("e%d", i)
			if rng.IntN(20) == 0 && i > 0 {
				id = fmt.Sprintf("e%d", rng.IntN(i)) // duplicate of an earlier id
			}
			e := ev(id, at, fmt.Sprintf("m%d", rng.IntN(3)), fmt.Sprintf("t%d", rng.IntN(2)), int64(rng.IntN(1000)), int64(rng.IntN(500)), int64(rng.IntN(1e6)))
			if rng.IntN(20) == 0 && i > 0 {
				// a duplicate carries the first occurrence's content
				for _, prev := range all {
					if prev.EventID == id {
						e = prev
						break
					}
				}
			}
			p := int(hashID(id) % parts)
			logs[p] = append(logs[p], e)
			all = append(all, e)
		}
		// Ground truth keeps first occurrences in partition order, which is
		// what a keyed topic preserves.
		var ordered []*schemas.Enriched
		for p := 0; p < parts; p++ {
			ordered = append(ordered, logs[p]...)
		}
		want := groundTruth(cfg, ordered)

		sink := newMemSink()
		committed := make([]int64, parts)
		now := t0
		for round := 0; round < 6; round++ {
			e := NewEngine(cfg)
			if rng.IntN(2) == 0 {
				e.maxFlushRows = 1 + rng.IntN(6) // windows closing over several flushes
			}
			if round == 4 {
				committed = make([]int64, parts) // reset the group to the earliest offsets
			}
			for p := int32(0); p < parts; p++ {
				e.Assign(p, sink.history(p, committed[p]), now)
			}
			crashAt := rng.IntN(8)
		steps:
			for step := 0; round == 5 || step < crashAt; step++ {
				progressed := false
				for p := int32(0); p < parts; p++ {
					start := committed[p]
					if e.parts[p].position >= 0 {
						start = e.parts[p].position + 1
					}
					n := min(int64(1+rng.IntN(80)), int64(len(logs[p]))-start)
					if n <= 0 {
						continue
					}
					progressed = true
					in := make([]Input, n)
					for i := range in {
						in[i] = Input{Offset: start + int64(i), Event: logs[p][start+int64(i)]}
					}
					e.AddBatch(p, in, now, nil)
				}
				for more := rng.IntN(2) == 0 || !progressed; more; {
					f := e.Flush(now, !progressed)
					if rng.IntN(6) == 0 && round < 5 {
						// crash with the write half done: events stored, rows not
						sink.write(&Flush{Events: f.Events})
						break steps
					}
					sink.write(f)
					e.Ack(f)
					for p := int32(0); p < parts; p++ {
						if off, ok := e.CommitOffset(p); ok && off > committed[p] {
							committed[p] = off
						}
					}
					more = f.More
				}
				if !progressed {
					break
				}
			}
			e.Close()
		}
		got := sink.totals()
		if len(got) != len(want) {
			t.Fatalf("seed %d: %d window keys, want %d", seed, len(got), len(want))
		}
		keys := make([]string, 0, len(want))
		for k := range want {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if got[k] != want[k] {
				t.Fatalf("seed %d: window %s = %+v, want %+v", seed, k, got[k], want[k])
			}
		}
	}
}

func hashID(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// TestReportedNamesOfOneModelShareARow: events of one canonical model
// under different reported names are one window row, keyed by the
// canonical name; a record enriched before canonical_model existed keys
// by its reported name, as it was first counted.
func TestReportedNamesOfOneModelShareARow(t *testing.T) {
	e := NewEngine(testConfig())
	defer e.Close()
	e.Assign(0, schemas.PartitionHistory{}, t0)
	in := []Input{
		{0, ev("a", t0.Add(1*time.Second), "gpt-4o", "t1", 10, 5, 100)},
		{1, ev("b", t0.Add(2*time.Second), "gpt-4o-2024-08-06", "t1", 20, 5, 200)},
		{2, ev("c", t0.Add(3*time.Second), "GPT-4o", "t1", 30, 5, 300)},
		{3, ev("d", t0.Add(4*time.Second), "gpt-4o-2024-11-20", "t1", 40, 5, 400)},
	}
	for _, i := range in[:3] {
		i.Event.CanonicalModel = "gpt-4o"
	}
	e.AddBatch(0, in, t0, nil)
	f := e.Flush(t0.Add(time.Hour), false)
	got := map[string]schemas.WindowRow{}
	for _, r := range f.Rows {
		if _, dup := got[r.Model]; dup {
			t.Fatalf("two rows for model %q: %+v", r.Model, f.Rows)
		}
		got[r.Model] = r
	}
	if r := got["gpt-4o"]; len(got) != 2 || r.Requests != 3 || r.InputTokens != 60 || r.CostPicos != schemas.PicosOf(600) {
		t.Fatalf("rows %+v, want gpt-4o with 3 requests, 60 input, 600 picos, and the old record alone", f.Rows)
	}
	if r := got["gpt-4o-2024-11-20"]; r.Requests != 1 {
		t.Fatalf("the record without canonical_model: %+v", r)
	}
}

// TestRequestCountIsCounted: an event that sums an interval of a
// self-hosted server counts the requests it says (request_count), its
// errors and unpriced requests too; one without counts one.
func TestRequestCountIsCounted(t *testing.T) {
	e := NewEngine(testConfig())
	defer e.Close()
	e.Assign(0, schemas.PartitionHistory{}, t0)
	interval := ev("a", t0.Add(1*time.Second), "m1", "t1", 100, 50, 0)
	interval.RequestCount = schemas.Int64(25)
	idle := ev("b", t0.Add(2*time.Second), "m1", "t1", 10, 5, 0) // tokens of unfinished requests only
	idle.RequestCount = schemas.Int64(0)
	failed := ev("c", t0.Add(3*time.Second), "m1", "t1", 0, 0, 0)
	failed.RequestCount, failed.Status, failed.Flags.Unpriced = schemas.Int64(4), schemas.StatusError, true
	one := ev("d", t0.Add(4*time.Second), "m1", "t1", 1, 1, 1)
	e.AddBatch(0, []Input{{0, interval}, {1, idle}, {2, failed}, {3, one}}, t0, nil)
	f := e.Flush(t0.Add(time.Hour), false)
	if len(f.Rows) != 1 {
		t.Fatalf("rows %+v, want one", f.Rows)
	}
	if r := f.Rows[0]; r.Requests != 30 || r.Errors != 4 || r.UnpricedRequests != 4 || r.InputTokens != 111 {
		t.Fatalf("row %+v, want 30 requests (25+0+4+1), 4 errors, 4 unpriced, 111 input tokens", r)
	}
}

// TestFlushBoundsRows closes many windows at once under a small row bound:
// each flush takes whole partition windows, in order, within the bound
// unless one window alone exceeds it, and the flushes together emit what
// one unbounded flush does.
func TestFlushBoundsRows(t *testing.T) {
	load := func(maxRows int) *Engine {
		e := NewEngine(testConfig())
		e.maxFlushRows = maxRows
		for p := range int32(3) {
			e.Assign(p, schemas.PartitionHistory{}, t0)
			var in []Input
			for w := range 3 {
				keys := 4
				if p == 2 && w == 1 {
					keys = 9 // more rows than the bound, taken alone
				}
				for k := range keys {
					id := fmt.Sprintf("p%d-w%d-k%d", p, w, k)
					in = append(in, Input{Offset: int64(len(in)), Event: ev(id, t0.Add(time.Duration(w)*time.Minute), "m", fmt.Sprint("t", k), 10, 1, 100)})
				}
			}
			e.AddBatch(p, in, t0, nil)
		}
		return e
	}
	one := load(1 << 20)
	want := one.Flush(t0, true)
	if want.More || len(want.Rows) != 4*3*3+5 {
		t.Fatalf("unbounded flush: %d rows (more %v), want %d", len(want.Rows), want.More, 4*3*3+5)
	}

	e := load(6)
	var got []schemas.WindowRow
	last := map[int32]time.Time{}
	flushes := 0
	for more := true; more; flushes++ {
		f := e.Flush(t0, true)
		units := map[string]int{}
		for _, r := range f.Rows {
			units[fmt.Sprint(r.SrcPartition, r.WindowStart)]++
			if prev, ok := last[r.SrcPartition]; ok && r.WindowStart.Before(prev) {
				t.Fatalf("flush %d: partition %d emits window %s after %s", flushes, r.SrcPartition, r.WindowStart, prev)
			}
			last[r.SrcPartition] = r.WindowStart
		}
		if len(f.Rows) > 6 && len(units) > 1 {
			t.Fatalf("flush %d: %d rows of %d windows, want at most 6 or one window", flushes, len(f.Rows), len(units))
		}
		if f.More && len(f.Rows) == 0 {
			t.Fatalf("flush %d: no rows but more to come", flushes)
		}
		got = append(got, f.Rows...)
		e.Ack(f)
		more = f.More
	}
	if st := e.Stats(); st.OpenWindows != 0 {
		t.Fatalf("%d windows still open after the flushes", st.OpenWindows)
	}
	if flushes < 5 {
		t.Errorf("%d flushes, want at least 5 for 9 windows of 4 rows under a bound of 6", flushes)
	}
	key := func(rows []schemas.WindowRow) []string {
		out := make([]string, len(rows))
		for i, r := range rows {
			out[i] = fmt.Sprintf("%s|%d|%d|%d", rowKey(r), r.Requests, r.CostPicos, r.InputTokens)
		}
		sort.Strings(out)
		return out
	}
	if g, w := key(got), key(want.Rows); fmt.Sprint(g) != fmt.Sprint(w) {
		t.Errorf("bounded flushes emit\n%v\nwant\n%v", g, w)
	}
	for p := range int32(3) {
		if off, ok := e.CommitOffset(p); !ok || off != int64(4*3+5*btoi(p == 2)) {
			t.Errorf("partition %d commits from %d (%v)", p, off, ok)
		}
	}
}

func btoi(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// TestDimIDIsByValue checks the key ids behind the cache keyed by string
// memory: equal names give one id wherever their strings are (cloned,
// interned by a decoder or not), distinct names distinct ids, across
// cache slot collisions (1,000 keys in 256 slots, sharing interned
// strings) and in any order.
func TestDimIDIsByValue(t *testing.T) {
	e := NewEngine(DefaultConfig())
	defer e.Close()
	r := rand.New(rand.NewPCG(3, 4))
	want := map[dims]uint32{}
	var dec schemas.Decoder
	for step := range 50_000 {
		team := fmt.Sprint("team-", r.IntN(20))
		model := fmt.Sprint("m", r.IntN(50))
		var ev *schemas.Enriched
		switch r.IntN(3) {
		case 0: // strings of their own
			ev = &schemas.Enriched{Event: schemas.Event{Provider: strings.Clone("openai")},
				Owner: schemas.Owner{Team: strings.Clone(team), Project: "p"}, CanonicalModel: strings.Clone(model)}
		case 1: // the reported name, no canonical one
			ev = &schemas.Enriched{Event: schemas.Event{Provider: "openai", Model: model},
				Owner: schemas.Owner{Team: team, Project: "p"}}
		default: // decoded, with interned strings
			src := ev0(model, team)
			ev = new(schemas.Enriched)
			if err := dec.Enriched(src.AppendJSON(nil), ev); err != nil {
				t.Fatal(err)
			}
		}
		d := dims{"openai", model, team, "p"}
		got := e.dimID(ev)
		if id, ok := want[d]; ok && got != id {
			t.Fatalf("step %d: %v has id %d, and %d before", step, d, got, id)
		} else if !ok {
			for other, id := range want {
				if id == got {
					t.Fatalf("step %d: %v has the id %d of %v", step, d, got, other)
				}
			}
			want[d] = got
		}
		if e.dimList[got] != d {
			t.Fatalf("step %d: id %d lists %v, want %v", step, got, e.dimList[got], d)
		}
	}
	if len(e.dimList) != len(want) {
		t.Fatalf("%d ids for %d keys", len(e.dimList), len(want))
	}
}

// ev0 is an event of model and team with every field the decoder needs.
func ev0(model, team string) *schemas.Enriched {
	e := ev("id-1", t0, "reported", team, 1, 1, 1)
	e.CanonicalModel = model
	return e
}

// TestDimsSameMemory checks the cache's comparison: only the same data and
// length in all four strings is a match; equal text elsewhere, or a
// prefix of the same memory, is not.
func TestDimsSameMemory(t *testing.T) {
	base := dims{"openai", "gpt-4o", "search", "ranking"}
	if !base.sameMemory(&dims{base.provider, base.model, base.team, base.project}) {
		t.Fatal("the same strings are not the same memory")
	}
	for i, o := range []dims{
		{strings.Clone(base.provider), base.model, base.team, base.project},
		{base.provider, strings.Clone(base.model), base.team, base.project},
		{base.provider, base.model, strings.Clone(base.team), base.project},
		{base.provider, base.model, base.team, strings.Clone(base.project)},
		{base.provider[:5], base.model, base.team, base.project},
		{base.provider, base.model[:5], base.team, base.project},
		{base.provider, base.model, base.team[:5], base.project},
		{base.provider, base.model, base.team, base.project[:5]},
	} {
		if base.sameMemory(&o) {
			t.Errorf("case %d: %v taken for the same memory as %v", i, o, base)
		}
	}
}
