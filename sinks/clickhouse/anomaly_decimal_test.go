package clickhouse

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// TestMigrationKeepsFloatAnomalyScores: scores written before migration 90
// (Float64 baseline and spread, the recent baseline a Float64 of
// picodollars) read back as exact decimals after it, next to scores
// written after it.
func TestMigrationKeepsFloatAnomalyScores(t *testing.T) {
	upgradeStores(t, testMigrationKeepsFloatAnomalyScores)
}

func testMigrationKeepsFloatAnomalyScores(t *testing.T, s *Store) {
	ctx := context.Background()
	schemaBefore(t, s, 90)
	old := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+TableAnomalies+` (window_start, team, model, cost_usd, baseline_usd, stddev_usd, z_score, observations, is_anomaly, ewma_mean, ewma_var, scored_at)`)
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.Append(old, "search", "gpt-4o", decimal.RequireFromString("0.009"), 0.002, 0.0005, 14.0, uint32(36), uint8(1), 2e9, 2.5e17, old); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}

	applied, err := s.Migrate(ctx)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if len(applied) == 0 || applied[0] != 90 {
		t.Fatalf("Migrate applied %v, want 90 first", applied)
	}
	// A window past int64 picodollars and an odd picodollar stay exact.
	huge, _ := schemas.PicosFromBig(decimal.RequireFromString("20000000000000000000123").BigInt())
	if err := s.WriteScores(ctx, []schemas.Score{{
		SeriesCost:    schemas.SeriesCost{WindowStart: old.Add(time.Minute), Team: "search", Model: "gpt-4o", CostPicos: schemas.PicosOf(9_000_000_001)},
		BaselinePicos: huge, StddevPicos: schemas.PicosOf(500_000_001), Z: 3, Observations: 37, EWMAMeanPicos: schemas.PicosOf(2_000_000_003),
	}}); err != nil {
		t.Fatalf("WriteScores: %v", err)
	}
	rows, err := s.Query(ctx, `SELECT toString(baseline_usd), toString(stddev_usd), toString(ewma_mean_usd), toTypeName(baseline_usd)
FROM cost_anomalies_final ORDER BY window_start`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got [][4]string
	for rows.Next() {
		var r [4]string
		if err := rows.Scan(&r[0], &r[1], &r[2], &r[3]); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	want := [][4]string{
		{"0.002000000000", "0.000500000000", "0.002000000000", "Decimal(38, 12)"},
		{"20000000000.000000000123", "0.000500000001", "0.002000000003", "Decimal(38, 12)"},
	}
	if len(got) != len(want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	for i := range want {
		for j := 0; j < 3; j++ {
			a, _ := decimal.NewFromString(got[i][j])
			b := decimal.RequireFromString(want[i][j])
			if !a.Equal(b) {
				t.Errorf("row %d column %d = %s, want %s", i, j, got[i][j], want[i][j])
			}
		}
		if got[i][3] != want[i][3] {
			t.Errorf("row %d type %s, want %s", i, got[i][3], want[i][3])
		}
	}
}
