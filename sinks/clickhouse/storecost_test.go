package clickhouse

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/internal/testenv"
)

// BenchmarkStoreCost measures what storing an event costs in all, per
// number of events a Write takes (the aggregator's flush): the client's
// CPU and the local server's for the INSERTs and for the background
// merges they cause, until no merge runs. An op stores 262,144 distinct
// events into a fresh database.
func BenchmarkStoreCost(b *testing.B) {
	const total = 262_144
	events := testEvents(total)
	for i := range events {
		events[i].Event.EventID = fmt.Sprintf("01J%023d", i)
		events[i].Offset = int64(i)
	}
	for _, size := range []int{4_096, 16_384, 32_768, 65_536} {
		b.Run(fmt.Sprintf("flush=%d", size), func(b *testing.B) {
			ctx := context.Background()
			var client, server time.Duration
			for b.Loop() {
				b.StopTimer()
				addr, db := testenv.ClickHouseDatabase(b)
				cfg := DefaultConfig()
				cfg.Addr, cfg.Database = addr, db
				s, err := Open(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Migrate(ctx); err != nil {
					b.Fatal(err)
				}
				settle(b, s, db)
				b.StartTimer()
				cpu := startCPU()
				for lo := 0; lo < total; lo += size {
					if err := s.Write(ctx, events[lo:lo+size], nil); err != nil {
						b.Fatal(err)
					}
				}
				settle(b, s, db)
				client += processCPU() - cpu.client0
				server += pidCPU(cpu.serverPID) - cpu.server0
				_ = s.Close()
			}
			b.ReportMetric(float64(client.Nanoseconds())/float64(total*b.N), "client-cpu-ns/event")
			if pid := clickhouseServerPID(); pid > 0 {
				b.ReportMetric(float64(server.Nanoseconds())/float64(total*b.N), "server-cpu-ns/event")
			}
		})
	}
}

// settle waits until no merge has run in database db for two seconds.
func settle(b *testing.B, s *Store, db string) {
	for quiet := 0; quiet < 4; {
		var n uint64
		if err := s.conn.QueryRow(context.Background(), "SELECT count() FROM system.merges WHERE database = ?", db).Scan(&n); err != nil {
			b.Fatal(err)
		}
		if quiet++; n > 0 {
			quiet = 0
		}
		time.Sleep(500 * time.Millisecond)
	}
}
