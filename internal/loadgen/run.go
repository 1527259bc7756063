package loadgen

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivis-dev/aivis/internal/obs"
)

// Sink delivers batches of items. Send returns once the whole batch is
// delivered or has failed; it may block (retrying) until ctx ends. Run calls
// Send from one goroutine and never reuses a batch slice it has passed on.
type Sink interface {
	Send(ctx context.Context, items []Item) error
}

// Stats counts what a run did. Duplicates, Malformed, Late and OutOfOrder
// are subsets of Sent; Errors counts items in batches the sink failed to
// deliver. Sent - Duplicates - Malformed distinct valid events were sent.
type Stats struct {
	Sent       int64         `json:"sent"`
	Duplicates int64         `json:"duplicates"`
	Malformed  int64         `json:"malformed"`
	Late       int64         `json:"late"`
	OutOfOrder int64         `json:"out_of_order"`
	Errors     int64         `json:"errors"`
	Elapsed    time.Duration `json:"elapsed"`
}

// Distinct returns the number of distinct valid events sent.
func (s Stats) Distinct() int64 { return s.Sent - s.Duplicates - s.Malformed }

// Pacing: Run wakes every batchInterval and sends what has come due, at
// most maxBatch items per Send so a slow sink cannot grow one batch forever.
const (
	batchInterval    = 100 * time.Millisecond
	maxBatch         = 10_000
	progressInterval = 100 * time.Millisecond
)

// newSentCounter returns aivis_loadgen_items_total on reg (nil: not
// exported).
func newSentCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	return obs.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_loadgen_items_total",
		Help: "Items loadgen handed to its sink, by type (valid, duplicate, malformed) and outcome (sent, failed).",
	}, []string{"type", "outcome"}))
}

// Run generates traffic for cfg and sends it to sink, paced to the items'
// Due times in batches, until cfg.Duration has passed or ctx ends (a normal
// stop, not an error). progress, if not nil, gets the running totals about
// every tenth of a second and the final totals at the end. A failed batch is counted
// and the run goes on; Run then returns an error saying how many items were
// not delivered.
func Run(ctx context.Context, cfg Config, sink Sink, progress func(Stats)) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, fmt.Errorf("checking loadgen config: %w", err)
	}
	began := time.Now()
	itemsSent := newSentCounter(cfg.Metrics)
	cfg.Start = cfg.startAt(began)
	gen := NewGenerator(cfg)
	var sim *GPUSim
	if cfg.GPU {
		var err error
		if sim, err = NewGPUSim(cfg.Start); err != nil {
			return Stats{}, err
		}
		defer sim.Close()
	}
	var (
		st           Stats
		lastErr      error
		lastProgress = began
		next         = gen.Next()
	)
	ticker := time.NewTicker(batchInterval)
	defer ticker.Stop()
loop:
	for {
		elapsed := time.Since(began)
		done := cfg.Duration > 0 && elapsed >= cfg.Duration
		if done {
			elapsed = cfg.Duration
		}
		batch := make([]Item, 0, min(maxBatch, 64))
		for next.Due <= elapsed && len(batch) < maxBatch {
			batch = append(batch, next)
			next = gen.Next()
		}
		if len(batch) > 0 {
			if err := sink.Send(ctx, batch); err != nil {
				if ctx.Err() != nil {
					break loop // interrupted mid-send: a stop, not a failure
				}
				st.Errors += int64(len(batch))
				lastErr = err
				count(itemsSent, batch, "failed")
			} else {
				st.add(batch)
				count(itemsSent, batch, "sent")
			}
		}
		if sim != nil && ctx.Err() == nil {
			if err := sendGPU(ctx, sim, cfg.Start.Add(time.Duration(float64(elapsed)*cfg.TimeScale)), sink, &st, itemsSent); err != nil {
				lastErr = err
			}
		}
		st.Elapsed = time.Since(began)
		if progress != nil && time.Since(lastProgress) >= progressInterval {
			progress(st)
			lastProgress = time.Now()
		}
		switch {
		case ctx.Err() != nil:
			break loop
		case len(batch) == maxBatch:
			continue // behind schedule: catch up before sleeping
		case done:
			break loop
		}
		select {
		case <-ctx.Done():
			break loop
		case <-ticker.C:
		}
	}
	st.Elapsed = time.Since(began)
	if progress != nil {
		progress(st)
	}
	if st.Errors > 0 {
		return st, fmt.Errorf("sending load: %d of %d items were not delivered; last error: %w",
			st.Errors, st.Errors+st.Sent, lastErr)
	}
	return st, nil
}

// sendGPU sends the simulated GPU host's events up to event time t.
func sendGPU(ctx context.Context, sim *GPUSim, t time.Time, sink Sink, st *Stats, itemsSent *prometheus.CounterVec) error {
	evs, err := sim.Until(t)
	if len(evs) > 0 {
		batch := make([]Item, len(evs))
		for i := range evs {
			batch[i] = Item{Event: &evs[i], Raw: evs[i].AppendJSON(nil)}
		}
		if serr := sink.Send(ctx, batch); serr != nil {
			st.Errors += int64(len(batch))
			count(itemsSent, batch, "failed")
			return serr
		}
		st.add(batch)
		count(itemsSent, batch, "sent")
	}
	if err != nil {
		return fmt.Errorf("simulating the GPU host: %w", err)
	}
	return nil
}

func (s *Stats) add(batch []Item) {
	for _, it := range batch {
		s.Sent++
		switch {
		case it.Malformed:
			s.Malformed++
		case it.Duplicate:
			s.Duplicates++
		case it.Late:
			s.Late++
		case it.OutOfOrder:
			s.OutOfOrder++
		}
	}
}

func count(itemsSent *prometheus.CounterVec, batch []Item, outcome string) {
	var valid, dup, bad float64
	for _, it := range batch {
		switch {
		case it.Malformed:
			bad++
		case it.Duplicate:
			dup++
		default:
			valid++
		}
	}
	itemsSent.WithLabelValues("valid", outcome).Add(valid)
	itemsSent.WithLabelValues("duplicate", outcome).Add(dup)
	itemsSent.WithLabelValues("malformed", outcome).Add(bad)
}
