package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// WriteBudgetStatus inserts budget evaluations; the newest evaluation of a
// (budget, period start) replaces the older ones (by version), so the
// table holds one current row per budget and period.
func (s *Store) WriteBudgetStatus(ctx context.Context, rows []schemas.BudgetStatus) error {
	if len(rows) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+TableBudgetStatus+` (budget_id, name, scope, period, timezone, period_start, period_end,
    amount_usd, soft_usd, hard_usd, spent_usd, forecast_usd, forecast_low_usd, forecast_high_usd, forecast_method,
    exhausts_at, state, alerted, evaluated_at, version)`)
	if err != nil {
		return fmt.Errorf("preparing budget status insert: %w", err)
	}
	defer batch.Abort()
	for _, r := range rows {
		exhausts := r.ExhaustsAt
		if exhausts.IsZero() {
			exhausts = time.Unix(0, 0)
		}
		alerted := r.Alerted
		if alerted == nil {
			alerted = []string{}
		}
		if err := batch.Append(r.BudgetID, r.Name, r.Scope, r.Period, r.Timezone, r.PeriodStart, r.PeriodEnd,
			r.AmountUSD, r.SoftUSD, r.HardUSD, r.SpentUSD, r.ForecastUSD, r.ForecastLowUSD, r.ForecastHighUSD, r.ForecastMethod,
			exhausts, r.State, alerted, r.EvaluatedAt, uint64(r.EvaluatedAt.UnixNano())); err != nil {
			return fmt.Errorf("appending the status of budget %s: %w", r.BudgetID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d budget statuses: %w", len(rows), err)
	}
	return nil
}
