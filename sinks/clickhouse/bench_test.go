package clickhouse

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/aivis-dev/aivis/schemas"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// BenchmarkWrite measures events written per second through Write, and the
// row-wise AppendRow alternative that Write does not use.
func BenchmarkWrite(b *testing.B) {
	const batch = 10_000
	s := openTest(b)
	events := testEvents(batch)
	ctx := context.Background()

	b.Run("columnar", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Write(ctx, events, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("rows", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := writeRows(ctx, s, events); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// writeRows inserts events with one batch.Append per row, for comparison.
func writeRows(ctx context.Context, s *Store, events []schemas.StoredEvent) error {
	cols, err := eventColumns(events[:1])
	if err != nil {
		return err
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+TableEvents+" ("+strings.Join(names, ", ")+")")
	if err != nil {
		return err
	}
	defer batch.Close()
	for _, se := range events {
		e := se.Event
		u := e.Usage
		err := batch.Append(e.EventID, e.Time, e.Time, e.Kind, e.Source, e.Provider, e.Model, e.Operation,
			e.Status, e.ErrorType, schemas.Get(e.LatencyMs), e.ServiceTier, e.Owner.Team, e.Owner.Project,
			e.Owner.CostCenter, e.APIKeyID, schemas.Get(u.InputTokens), schemas.Get(u.CacheReadInputTokens),
			schemas.Get(u.CacheWriteInputTokens), schemas.Get(u.OutputTokens), schemas.Get(u.ReasoningOutputTokens),
			picosToUSD(e.CostPicos), e.CostSource, e.Pricing.CatalogVersion, e.Pricing.PriceID,
			flag(e.Flags.Unpriced), flag(e.Flags.Unowned), labelsJSON(e.Labels), string(e.RawUsage),
			uint32(se.Partition), se.Offset, uint64(0))
		if err != nil {
			return err
		}
	}
	return batch.Send()
}
