// Package rerate recomputes the cost of stored events under another pricing
// catalog and corrects the window aggregates to match, without counting any
// event twice. Events are read from usage_events (newest rating), priced
// again by package pricing for the team they were attributed to, written
// back with a higher rating version (which replaces the old rows under
// FINAL), and each affected window gets a correction row that sets its cost
// to the events' new total.
package rerate

import (
	"context"
	"fmt"
	"math/big"
	"sort"
	"time"

	"github.com/aivis-dev/aivis/internal/progress"
	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// Result summarises one re-rating.
type Result struct {
	From, To time.Time
	Version  uint64
	Events   int
	// Changed counts the events whose cost changes.
	Changed int
	// Rewritten counts the events written again: those whose cost, price
	// id or catalog version changes (at least Changed).
	Rewritten   int
	OldPicos    schemas.Picos128
	NewPicos    schemas.Picos128
	Corrections int
	Models      []ModelChange
}

// ModelChange is the cost change of one (provider, canonical model).
type ModelChange struct {
	Provider, Model string
	Events          int
	// Changed counts the model's events whose cost changes.
	Changed            int
	OldPicos, NewPicos schemas.Picos128
}

// writeChunk bounds the events written per insert.
const writeChunk = 50_000

// Run re-rates the events with time in [from, to), widened to whole
// windows. The range must be settled: every stored event already in a
// written window (checked first; a window still open in a running
// aggregator would otherwise be corrected for an event it has not counted
// yet). With dryRun nothing is written. Running it again with the same
// catalog changes nothing; after an interruption, running it again
// completes it.
func Run(ctx context.Context, store *chsink.Store, catalog *pricing.Catalog, from, to time.Time, window time.Duration, dryRun bool) (*Result, error) {
	return RunWithProgress(ctx, store, catalog, from, to, window, dryRun, nil)
}

// RunWithProgress is Run telling p (nil: nobody) its phases: checking the
// range, reading events, pricing them, writing them, correcting windows.
func RunWithProgress(ctx context.Context, store *chsink.Store, catalog *pricing.Catalog, from, to time.Time, window time.Duration, dryRun bool, p *progress.Meter) (*Result, error) {
	from = from.UTC().Truncate(window)
	if t := to.UTC().Truncate(window); !t.Equal(to.UTC()) {
		to = t.Add(window)
	}
	if !from.Before(to) {
		return nil, fmt.Errorf("re-rating: --from %s is not before --to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	res := &Result{From: from, To: to}
	p.Phase("checking that the range is settled", "groups", 0)
	rec, err := store.ReconcileUsage(ctx, from, to)
	if err != nil {
		return nil, err
	}
	if len(rec.Diffs) > 0 {
		return nil, fmt.Errorf("re-rating %s..%s: %d (day, model, team) groups are not settled yet (events not in written windows); wait for the aggregator to write them, or narrow the range; `aivis verify` lists them",
			from.Format(time.RFC3339), to.Format(time.RFC3339), len(rec.Diffs))
	}
	prev, err := store.MaxRatingVersion(ctx)
	if err != nil {
		return nil, err
	}
	res.Version = prev + 1
	p.Phase("reading events", "events", 0)
	events, err := store.RatedEvents(ctx, from, to)
	if err != nil {
		return nil, err
	}
	res.Events = len(events)
	p.Phase("pricing", "events", int64(len(events)))
	models := map[[2]string]*ModelChange{}
	changed := make([]schemas.StoredEvent, 0, len(events))
	for _, se := range events {
		old := se.Event
		res.OldPicos = res.OldPicos.Add(old.CostPicos)
		// Ownership stays as first attributed: re-rating changes prices
		// only, and contracts apply to the team the event is stored under.
		next := *old
		q := catalog.PriceEnriched(&next)
		// The stored warnings are pricing's; the new rating's replace them.
		next.Warnings = q.Warnings
		// The canonical model stays as first stored too: it keys the
		// windows, and a correction under another name would add the cost
		// to one window without taking it from the other.
		next.CanonicalModel = old.CanonicalModel
		res.NewPicos = res.NewPicos.Add(next.CostPicos)
		p.Add(1)
		mk := [2]string{old.Provider, old.ModelID()}
		m := models[mk]
		if m == nil {
			m = &ModelChange{Provider: old.Provider, Model: old.ModelID()}
			models[mk] = m
		}
		m.Events++
		m.OldPicos = m.OldPicos.Add(old.CostPicos)
		m.NewPicos = m.NewPicos.Add(next.CostPicos)
		if next.CostPicos != old.CostPicos {
			res.Changed++
			m.Changed++
		}
		if next.CostPicos == old.CostPicos && next.Pricing.PriceID == old.Pricing.PriceID &&
			next.Pricing.CatalogVersion == old.Pricing.CatalogVersion {
			continue
		}
		next.EnrichedAt = time.Now().UTC()
		changed = append(changed, schemas.StoredEvent{Event: &next, Partition: se.Partition, Offset: se.Offset, RatingVersion: res.Version})
	}
	res.Rewritten = len(changed)
	for _, m := range models {
		res.Models = append(res.Models, *m)
	}
	change := func(m ModelChange) *big.Int { return m.NewPicos.Sub(m.OldPicos).Big() }
	sort.Slice(res.Models, func(i, j int) bool {
		return change(res.Models[i]).CmpAbs(change(res.Models[j])) > 0
	})
	if dryRun {
		return res, nil
	}
	p.Phase("writing re-rated events", "events", int64(len(changed)))
	for i := 0; i < len(changed); i += writeChunk {
		chunk := changed[i:min(i+writeChunk, len(changed))]
		if err := store.Write(ctx, chunk, nil); err != nil {
			return res, fmt.Errorf("writing re-rated events (run the same command again to finish): %w", err)
		}
		p.Add(int64(len(chunk)))
	}
	p.Phase("correcting windows", "windows", 0)
	// Corrections are computed even when no event changed, so that a run
	// interrupted after writing its events is completed by the next one.
	corr, err := store.CostCorrections(ctx, from, to, window, res.Version)
	if err != nil {
		return res, err
	}
	res.Corrections = len(corr)
	if err := store.Write(ctx, nil, corr); err != nil {
		return res, fmt.Errorf("writing window corrections (run the same command again to finish): %w", err)
	}
	return res, nil
}
