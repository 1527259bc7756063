package serving

import (
	"math"
	"time"
)

// Delta is what one model of one target counted over one interval. A
// count is nil when the server does not export it.
type Delta struct {
	Model        string
	Start, End   time.Time
	InputTokens  *int64
	OutputTokens *int64
	Requests     *int64
	// Reset says that a counter went down since the last reading (the
	// server restarted): its delta is then its new value.
	Reset bool
}

// Tracker turns successive readings of targets into deltas. It is the pure
// core of the scraper: no network, no clock. Not safe for concurrent use.
type Tracker struct {
	last map[string]seen
}

type seen struct {
	at      time.Time
	reading Reading
}

// NewTracker returns a tracker that has seen nothing.
func NewTracker() *Tracker { return &Tracker{last: map[string]seen{}} }

// Observe records the reading of target taken at and returns the deltas
// since its previous reading, one per model that counted something. The
// first reading of a target is its baseline and yields nothing: what came
// before it is not known. A reading not after the previous one is ignored.
//
// A model new since the previous reading counts from zero (its series was
// created since); one that went away is forgotten, so when it returns it
// counts from zero too, as after a restart.
func (t *Tracker) Observe(target string, at time.Time, r Reading) []Delta {
	prev, ok := t.last[target]
	if ok && !at.After(prev.at) {
		return nil
	}
	t.last[target] = seen{at: at, reading: r}
	if !ok {
		return nil
	}
	var out []Delta
	for _, m := range r.Models() {
		cur := r[m]
		before := prev.reading[m] // zero Counters when the model is new
		d := Delta{Model: m, Start: prev.at, End: at}
		var reset bool
		d.InputTokens, reset = counterDelta(before.InputTokens, cur.InputTokens)
		d.Reset = d.Reset || reset
		d.OutputTokens, reset = counterDelta(before.OutputTokens, cur.OutputTokens)
		d.Reset = d.Reset || reset
		d.Requests, reset = counterDelta(before.Requests, cur.Requests)
		d.Reset = d.Reset || reset
		if d.counted() {
			out = append(out, d)
		}
	}
	return out
}

// Forget drops a target's state, so that its next reading is a baseline.
func (t *Tracker) Forget(target string) { delete(t.last, target) }

// counterDelta is cur-prev, or cur when the counter went down (restarted)
// or was not there before; nil when cur is not exported.
func counterDelta(prev, cur *float64) (*int64, bool) {
	if cur == nil {
		return nil, false
	}
	if prev == nil {
		v := round(*cur)
		return &v, false
	}
	if *cur < *prev {
		v := round(*cur)
		return &v, true
	}
	v := round(*cur) - round(*prev)
	return &v, false
}

// round converts a counter to a whole count; counters beyond int64 (no
// server counts that many tokens) saturate.
func round(v float64) int64 {
	if v >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(math.Round(v))
}

func (d Delta) counted() bool {
	for _, p := range []*int64{d.InputTokens, d.OutputTokens, d.Requests} {
		if p != nil && *p != 0 {
			return true
		}
	}
	return false
}
