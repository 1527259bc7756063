package clickhouse

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// TestMigrationKeepsFloatBudgetForecasts: budget evaluations written
// before migration 91 (a Float64 forecast and interval) read back as
// exact decimals after it, next to evaluations written after it, which
// keep every picodollar.
func TestMigrationKeepsFloatBudgetForecasts(t *testing.T) {
	upgradeStores(t, testMigrationKeepsFloatBudgetForecasts)
}

func testMigrationKeepsFloatBudgetForecasts(t *testing.T, s *Store) {
	ctx := context.Background()
	schemaBefore(t, s, 91)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 1, 0)
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+TableBudgetStatus+` (budget_id, name, scope, period, timezone, period_start, period_end,
    amount_usd, soft_usd, hard_usd, spent_usd, forecast_usd, forecast_low_usd, forecast_high_usd, forecast_method,
    exhausts_at, state, alerted, evaluated_at, version)`)
	if err != nil {
		t.Fatal(err)
	}
	thousand := decimal.NewFromInt(1000)
	if err := batch.Append("a-old", "", "team=search", "monthly", "UTC", start, end, thousand, decimal.Zero, thousand,
		decimal.RequireFromString("936"), 1487.3, 1400.25, 1600.125, "seasonal", time.Unix(0, 0), "soft", []string{"soft"}, start, uint64(1)); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}

	applied, err := s.Migrate(ctx)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if len(applied) == 0 || applied[0] != 91 || slices.Contains(applied, 90) {
		t.Fatalf("Migrate applied %v, want 91 first", applied)
	}
	// Past float64's 16 digits and an odd picodollar: exact.
	if err := s.WriteBudgetStatus(ctx, []schemas.BudgetStatus{{
		BudgetID: "b-new", Scope: "org", Period: "monthly", Timezone: "UTC", PeriodStart: start, PeriodEnd: end,
		AmountUSD: thousand, HardUSD: thousand, SpentUSD: decimal.RequireFromString("0.000000000001"),
		ForecastUSD:     decimal.RequireFromString("12345678901234.567890123457"),
		ForecastLowUSD:  decimal.RequireFromString("0.000000000003"),
		ForecastHighUSD: decimal.RequireFromString("99999999999999999999999999.999999999999"),
		ForecastMethod:  "linear", State: "ok", EvaluatedAt: start,
	}}); err != nil {
		t.Fatalf("WriteBudgetStatus: %v", err)
	}
	// Read as the budget package reads them (18.16's toString misprints
	// Decimal128 values this large).
	rows, err := s.Query(ctx, `SELECT forecast_usd, forecast_low_usd, forecast_high_usd,
    toTypeName(forecast_usd), toTypeName(forecast_low_usd), toTypeName(forecast_high_usd)
FROM `+ViewBudgetStatus+` ORDER BY budget_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type row struct {
		usd   [3]decimal.Decimal
		types [3]string
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.usd[0], &r.usd[1], &r.usd[2], &r.types[0], &r.types[1], &r.types[2]); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := [][3]string{
		{"1487.3", "1400.25", "1600.125"},
		{"12345678901234.567890123457", "0.000000000003", "99999999999999999999999999.999999999999"},
	}
	if len(got) != len(want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	for i := range want {
		for j := range 3 {
			if a := got[i].usd[j]; !a.Equal(decimal.RequireFromString(want[i][j])) {
				t.Errorf("row %d column %d = %s, want %s", i, j, a, want[i][j])
			}
			if typ := got[i].types[j]; typ != "Decimal(38, 12)" {
				t.Errorf("row %d column %d type %s, want Decimal(38, 12)", i, j, typ)
			}
		}
	}
}
