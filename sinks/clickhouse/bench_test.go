package clickhouse

import (
	"context"
	"io"
	"log/slog"
	"reflect"
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
		cpu := startCPU()
		for b.Loop() {
			if err := s.Write(ctx, events, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "rows/s")
		cpu.report(b, batch*b.N)
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
// The values come from the same columns Write sends, so the two cannot
// drift apart when the table grows a column.
func writeRows(ctx context.Context, s *Store, events []schemas.StoredEvent) error {
	buf := new(eventBuffers)
	defer buf.release()
	cols, err := buf.columns(events)
	if err != nil {
		return err
	}
	var names []string
	var values []reflect.Value
	for _, c := range cols {
		if !c.omitable { // left out of the INSERT, as send does
			names = append(names, c.name)
			data := c.data
			if p, ok := data.(picoUSD); ok {
				data = p.decimals()
			}
			values = append(values, reflect.ValueOf(data))
		}
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+TableEvents+" ("+strings.Join(names, ", ")+")")
	if err != nil {
		return err
	}
	defer batch.Close()
	row := make([]any, len(values))
	for r := range events {
		for i, v := range values {
			row[i] = v.Index(r).Interface()
		}
		if err := batch.Append(row...); err != nil {
			return err
		}
	}
	return batch.Send()
}
