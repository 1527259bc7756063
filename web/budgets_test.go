package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
	"github.com/aivis-dev/aivis/web"
)

// TestBudgetsCarryExactForecasts: /api/v1/budgets answers the forecast and
// its interval as exact decimal strings, like spent_usd and amount_usd,
// to the picodollar stored, and the answer matches the OpenAPI document.
func TestBudgetsCarryExactForecasts(t *testing.T) {
	_, router := openAPIRouter(t)
	addr, db := testenv.ClickHouseDatabase(t)
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	ctx := context.Background()
	store, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	usd := decimal.RequireFromString
	// 16 significant digits and more: a float64 would lose the last ones.
	st := schemas.BudgetStatus{
		BudgetID: "search-monthly", Scope: "team=search", Period: "monthly", Timezone: "UTC",
		PeriodStart: start, PeriodEnd: start.AddDate(0, 1, 0),
		AmountUSD: usd("1000"), HardUSD: usd("1000"), SpentUSD: usd("936.000000000001"),
		ForecastUSD: usd("1487.966666666667"), ForecastLowUSD: usd("1234567.000000000001"), ForecastHighUSD: usd("98765432109876.543210987654"),
		ForecastMethod: "seasonal", State: schemas.BudgetSoft, Alerted: []string{"soft"}, EvaluatedAt: start.Add(time.Hour),
	}
	if err := store.WriteBudgetStatus(ctx, []schemas.BudgetStatus{st}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(web.NewServer(store, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	var b struct {
		Budgets []map[string]json.RawMessage `json:"budgets"`
	}
	getValid(t, router, srv, "/api/v1/budgets", 200, &b)
	if len(b.Budgets) != 1 {
		t.Fatalf("%d budgets, want 1", len(b.Budgets))
	}
	for field, want := range map[string]decimal.Decimal{
		"spent_usd": st.SpentUSD, "amount_usd": st.AmountUSD,
		"forecast_usd": st.ForecastUSD, "forecast_low_usd": st.ForecastLowUSD, "forecast_high_usd": st.ForecastHighUSD,
	} {
		var s string
		if err := json.Unmarshal(b.Budgets[0][field], &s); err != nil {
			t.Errorf("%s = %s, want a decimal string: %v", field, b.Budgets[0][field], err)
			continue
		}
		if got, err := decimal.NewFromString(s); err != nil || !got.Equal(want) {
			t.Errorf("%s = %q, want %s", field, s, want)
		}
	}
}
