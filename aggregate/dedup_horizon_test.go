package aggregate

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aivis-dev/aivis/schemas"
)

// The full-scale target is a 24 h horizon at 10,000 events/s within the
// default aggregate.dedup_memory_mib, 4608 MiB. The horizon tests run it
// scaled down with the same ratio of horizon to capacity: one event every
// 92 ms of event time (10.87 events/s, 939k ids a day) within 5 MiB
// (4608 MiB × 10.87/10,000 = 5.01 MiB), on a simulated clock.
const (
	scaledStep   = 92 * time.Millisecond
	scaledBudget = 5 // MiB
)

// horizonRun drives one partition with one event every scaledStep from t0
// until `until`, then sends a duplicate of the first event and a new one,
// confirming suspects the way the stage does against a model of the sink
// (every event sent before the current batch is stored). It returns the
// outcomes of the last two events, whether the duplicate was a suspect,
// and the engine.
func horizonRun(t *testing.T, budgetMiB int64, until time.Duration) (dup, fresh Outcome, suspect bool, e *Engine) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DedupMemoryMiB = budgetMiB
	e = NewEngine(cfg)
	e.Assign(0, schemas.PartitionHistory{}, t0)
	const batch = 2000
	evs := make([]*schemas.Enriched, batch)
	for i := range evs {
		evs[i] = ev("", t0, "m", "team", 10, 5, 1000)
	}
	in := make([]Input, 0, batch)
	var outcomes []Outcome
	var next int64        // index of the next event id
	var storedBelow int64 // ids below this index are in the sink
	stored := func(id string) bool {
		if id == "first" {
			return storedBelow > 0
		}
		n, err := strconv.ParseInt(strings.TrimPrefix(id, "s-"), 10, 64)
		return err == nil && n < storedBelow
	}
	send := func(in []Input, now time.Time) []Outcome {
		ids, _, _ := e.Suspects(0, in)
		answer := map[string]bool{}
		for _, id := range ids {
			if id == "first" {
				suspect = true
			}
			if stored(id) {
				answer[id] = true
			}
		}
		e.Resolve(0, answer)
		outcomes = e.AddBatch(0, in, now, outcomes)
		e.Ack(e.Flush(now, false))
		storedBelow = next
		return outcomes
	}
	steps := int64(until / scaledStep)
	for next < steps {
		in = in[:0]
		for j := 0; j < batch && next < steps; j++ {
			x := evs[j]
			x.EventID = "s-" + strconv.FormatInt(next, 10)
			if next == 0 {
				x.EventID = "first"
			}
			x.Time = t0.Add(time.Duration(next) * scaledStep)
			in = append(in, Input{Offset: next, Event: x})
			next++
		}
		for i, o := range send(in, in[len(in)-1].Event.Time) {
			if o != Accepted {
				t.Fatalf("event %s at %s: %s, want accepted", in[i].Event.EventID, in[i].Event.Time, o)
			}
		}
	}
	now := t0.Add(until)
	again := ev("first", t0, "m", "team", 10, 5, 1000)
	later := ev("s-"+strconv.FormatInt(next, 10), now, "m", "team", 10, 5, 1000)
	next++
	got := send([]Input{{Offset: next, Event: again}, {Offset: next + 1, Event: later}}, now)
	return got[0], got[1], suspect, e
}

// TestDuplicateAfter23HoursIsDropped sends an event, a day's traffic at the
// scaled rate, and the same event again 23 h after its original: it must
// be dropped as a duplicate, found in a sealed bucket and confirmed, with
// the full horizon held within the scaled budget.
func TestDuplicateAfter23HoursIsDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("feeds 900,000 events")
	}
	dup, fresh, suspect, e := horizonRun(t, scaledBudget, 23*time.Hour)
	st := e.Stats()
	t.Logf("%d ids, %.2f MiB (%.2f bytes/id), held %s, evicted %d", st.DedupEntries,
		float64(st.DedupBytes)/(1<<20), float64(st.DedupBytes)/float64(st.DedupEntries), st.DedupHeld, st.DedupEvictions)
	if dup != Duplicate || fresh != Accepted {
		t.Fatalf("duplicate 23 h later: %s, new event: %s; want duplicate, accepted", dup, fresh)
	}
	if !suspect {
		t.Fatal("the duplicate was not confirmed with the sink: want it found in a sealed bucket")
	}
	if st.DedupShort || st.DedupHeld != 24*time.Hour || st.DedupEvictions != 0 || st.DedupUnconfirmed != 0 {
		t.Fatalf("stats %+v: want the 24 h horizon held, nothing evicted or unconfirmed", st)
	}
	if st.DedupBytes > scaledBudget<<20 {
		t.Fatalf("dedup state %d bytes, over the %d MiB budget", st.DedupBytes, scaledBudget)
	}
}

// TestUnconfirmedSuspectIsCounted: when the sink does not hold the id a
// sealed bucket matches (a fingerprint collision, or an event the sink
// lost), the event counts.
func TestUnconfirmedSuspectIsCounted(t *testing.T) {
	e := NewEngine(DefaultConfig())
	e.Assign(0, schemas.PartitionHistory{}, t0)
	var outcomes []Outcome
	for i := range 40 { // 40 minutes: the first ids are sealed by then
		in := []Input{{Offset: int64(i), Event: ev("e-"+strconv.Itoa(i), t0.Add(time.Duration(i)*time.Minute), "m", "t", 1, 1, 1)}}
		outcomes = e.AddBatch(0, in, in[0].Event.Time, outcomes)
		e.Ack(e.Flush(in[0].Event.Time, false))
	}
	in := []Input{{Offset: 40, Event: ev("e-0", t0, "m", "t", 1, 1, 1)}}
	ids, from, to := e.Suspects(0, in)
	if len(ids) != 1 || ids[0] != "e-0" || from.After(t0) || to.Before(t0) {
		t.Fatalf("suspects %v in [%s, %s], want e-0 in a range holding %s", ids, from, to, t0)
	}
	e.Resolve(0, map[string]bool{})
	if got := e.AddBatch(0, in, t0.Add(40*time.Minute), outcomes); got[0] != Accepted {
		t.Fatalf("unconfirmed suspect: %s, want accepted", got[0])
	}
	// Now it is in the exact tier: a further copy is a certain duplicate.
	in[0].Offset = 41
	if ids, _, _ := e.Suspects(0, in); len(ids) != 0 {
		t.Fatalf("suspects %v: want the exact tier to decide", ids)
	}
	if got := e.AddBatch(0, in, t0.Add(40*time.Minute), outcomes); got[0] != Duplicate {
		t.Fatalf("second copy: %s, want duplicate", got[0])
	}
}

// TestDedupOverCapacityIsLoud runs the scaled rate within a fifth of its
// budget: the horizon cannot hold, and the stage must say so in its log,
// its metrics and its readiness.
func TestDedupOverCapacityIsLoud(t *testing.T) {
	if testing.Short() {
		t.Skip("feeds 300,000 events")
	}
	_, _, _, e := horizonRun(t, 1, 8*time.Hour)
	st := e.Stats()
	if !st.DedupShort || st.DedupHeld >= 24*time.Hour || st.DedupEvictions == 0 {
		t.Fatalf("stats %+v: want a short horizon and evictions", st)
	}
	if st.DedupBytes > 1<<20 {
		t.Fatalf("dedup state %d bytes, over its 1 MiB budget", st.DedupBytes)
	}

	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.DedupMemoryMiB = 1
	clock := t0
	s := &Stage{cfg: cfg, log: slog.New(slog.NewTextHandler(&logs, nil)), metrics: newStageMetrics(reg),
		now: func() time.Time { return clock }}
	s.reportDedupHorizon(st)
	s.reportDedupHorizon(st) // within the minute: logged once
	if n := strings.Count(logs.String(), "dedup horizon not held"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("want an error line:\n%s", logs.String())
	}
	if got := testutil.ToFloat64(s.metrics.dedupHeld); got != st.DedupHeld.Seconds() || got >= 86400 {
		t.Fatalf("aivis_aggregate_dedup_horizon_held_seconds = %v, want %v", got, st.DedupHeld.Seconds())
	}
	err := s.Ready()
	if err == nil || !strings.Contains(err.Error(), "aggregate.dedup_memory_mib") {
		t.Fatalf("Ready() = %v, want not ready naming aggregate.dedup_memory_mib", err)
	}
	t.Logf("held %s of 24h, %d evicted; not ready: %v", st.DedupHeld, st.DedupEvictions, err)
	clock = clock.Add(time.Minute)
	s.reportDedupHorizon(st)
	if n := strings.Count(logs.String(), "dedup horizon not held"); n != 2 {
		t.Fatalf("logged %d times after a minute, want twice", n)
	}
	// Once the horizon is held again, the stage is ready again.
	st.DedupShort, st.DedupHeld = false, 24*time.Hour
	s.reportDedupHorizon(st)
	if err := s.Ready(); err != nil {
		t.Fatalf("Ready() = %v after the horizon is held again", err)
	}
}
