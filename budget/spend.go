package budget

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// Querier runs a read-only query; *clickhouse.Store satisfies it.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// Store is where budgets read spend and keep their status;
// *clickhouse.Store satisfies it.
type Store interface {
	Querier
	WriteBudgetStatus(ctx context.Context, rows []schemas.BudgetStatus) error
}

// Spend is what ClickHouse says about one budget: hourly spend since the
// start of the history, and the exact spend of the period.
type Spend struct {
	Hourly Series
	Spent  decimal.Decimal
}

// spendQuery builds the query of one budget's hourly spend in [from,
// until) with the period's own spend (from periodStart) summed exactly
// beside it. Team, project, model (canonical) and provider scopes read the
// windows (cost_by_window); API key and label scopes need the events
// (usage_events, FINAL so that a re-rated event counts once, at its newest
// cost).
func spendQuery(s Spec, from, periodStart, until time.Time) (string, []any) {
	events := s.Scope.APIKey != "" || s.Scope.Label != ""
	timeCol, table, modelCol := "window_start", chsink.ViewWindows, "model"
	if events {
		timeCol, table, modelCol = "time", chsink.TableEvents+" FINAL", "canonical_model"
	}
	where := []string{timeCol + " >= toDateTime(?)", timeCol + " < toDateTime(?)"}
	args := []any{periodStart.Unix(), from.Unix(), until.Unix()}
	if events {
		// The table is ordered by date first: the range prunes parts.
		where = append([]string{"date >= toDate(toDateTime(?))"}, where...)
		args = []any{periodStart.Unix(), from.Unix(), from.Unix(), until.Unix()}
	}
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	eq("team", s.Scope.Team)
	eq("project", s.Scope.Project)
	eq("provider", s.Scope.Provider)
	eq(modelCol, s.Scope.Model)
	eq("api_key_id", s.Scope.APIKey)
	if s.LabelKey != "" {
		// labels is a flat JSON object of strings; the key is validated to
		// need no escaping.
		where = append(where, "visitParamExtractString(labels, ?) = ?")
		args = append(args, s.LabelKey, s.LabelValue)
	}
	q := `SELECT intDiv(toUInt32(` + timeCol + `), 3600) AS hour, sum(cost_usd) AS cost,
    sumIf(cost_usd, ` + timeCol + ` >= toDateTime(?)) AS in_period
FROM ` + table + `
WHERE ` + strings.Join(where, " AND ") + `
GROUP BY hour
ORDER BY hour`
	return q, args
}

// ReadSpend returns the hourly spend of s in [from, until) and its spend
// since periodStart (at or after from).
func ReadSpend(ctx context.Context, q Querier, s Spec, from, periodStart, until time.Time) (Spend, error) {
	query, args := spendQuery(s, from, periodStart, until)
	firstHour := from.Unix() / 3600
	n := int((until.Unix()+3599)/3600 - firstHour)
	out := Spend{Hourly: Series{Start: time.Unix(firstHour*3600, 0).UTC(), Values: make([]float64, max(n, 0))}}
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return out, fmt.Errorf("querying the spend of budget %s: %w (has `aivis migrate` run against this database?)", s.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var hour uint32
		var cost, inPeriod decimal.Decimal
		if err := rows.Scan(&hour, &cost, &inPeriod); err != nil {
			return out, fmt.Errorf("reading the spend of budget %s: %w", s.ID, err)
		}
		if i := int(int64(hour) - firstHour); i >= 0 && i < len(out.Hourly.Values) {
			out.Hourly.Values[i], _ = cost.Float64()
		}
		out.Spent = out.Spent.Add(inPeriod)
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("reading the spend of budget %s: %w", s.ID, err)
	}
	return out, nil
}

// statusColumns are the columns LatestStatus reads, in Status order.
const statusColumns = `budget_id, name, scope, period, timezone, toUInt32(period_start), toUInt32(period_end),
    amount_usd, soft_usd, hard_usd, spent_usd, forecast_usd, forecast_low_usd, forecast_high_usd, forecast_method,
    toUInt32(exhausts_at), state, alerted, toUInt32(evaluated_at)`

// LatestStatus returns the newest status of every budget's newest period,
// ordered by budget id.
func LatestStatus(ctx context.Context, q Querier) ([]schemas.BudgetStatus, error) {
	query := `SELECT ` + statusColumns + `
FROM ` + chsink.ViewBudgetStatus + `
WHERE (budget_id, period_start) IN (
    SELECT budget_id, max(period_start) FROM ` + chsink.ViewBudgetStatus + ` GROUP BY budget_id)
ORDER BY budget_id`
	rows, err := q.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("querying budget status: %w (has `aivis migrate` run against this database?)", err)
	}
	defer rows.Close()
	var out []schemas.BudgetStatus
	for rows.Next() {
		var r schemas.BudgetStatus
		var ps, pe, ex, ev uint32
		if err := rows.Scan(&r.BudgetID, &r.Name, &r.Scope, &r.Period, &r.Timezone, &ps, &pe,
			&r.AmountUSD, &r.SoftUSD, &r.HardUSD, &r.SpentUSD, &r.ForecastUSD, &r.ForecastLowUSD, &r.ForecastHighUSD, &r.ForecastMethod,
			&ex, &r.State, &r.Alerted, &ev); err != nil {
			return nil, fmt.Errorf("reading budget status: %w", err)
		}
		r.PeriodStart, r.PeriodEnd, r.EvaluatedAt = unix(ps), unix(pe), unix(ev)
		if ex != 0 {
			r.ExhaustsAt = unix(ex)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading budget status: %w", err)
	}
	return out, nil
}

func unix(s uint32) time.Time { return time.Unix(int64(s), 0).UTC() }
