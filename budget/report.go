package budget

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/report"
	"github.com/aivis-dev/aivis/schemas"
)

// Report prints the newest status of every budget (as the evaluator last
// wrote it to budget_status) as a table or as JSON.
func Report(ctx context.Context, q Querier, format string, w io.Writer) error {
	rows, err := LatestStatus(ctx, q)
	if err != nil {
		return err
	}
	switch format {
	case report.FormatJSON:
		return writeJSON(w, rows)
	case "", report.FormatTable:
		return writeTable(w, rows)
	}
	return fmt.Errorf("format %q: want table or json", format)
}

// reportRow is one budget in the JSON report.
type reportRow struct {
	Budget          string          `json:"budget"`
	Name            string          `json:"name,omitempty"`
	Scope           string          `json:"scope"`
	Period          string          `json:"period"`
	PeriodStart     time.Time       `json:"period_start"`
	PeriodEnd       time.Time       `json:"period_end"`
	AmountUSD       decimal.Decimal `json:"amount_usd"`
	SpentUSD        decimal.Decimal `json:"spent_usd"`
	UsedPercent     float64         `json:"used_percent"`
	ForecastUSD     decimal.Decimal `json:"forecast_usd"`
	ForecastLowUSD  decimal.Decimal `json:"forecast_low_usd"`
	ForecastHighUSD decimal.Decimal `json:"forecast_high_usd"`
	ExhaustsAt      *time.Time      `json:"exhausts_at,omitempty"`
	State           string          `json:"state"`
	EvaluatedAt     time.Time       `json:"evaluated_at"`
}

func usedPercent(r schemas.BudgetStatus) float64 {
	if r.AmountUSD.IsZero() {
		return 0
	}
	p, _ := r.SpentUSD.Div(r.AmountUSD).Shift(2).Round(1).Float64()
	return p
}

func writeJSON(w io.Writer, rows []schemas.BudgetStatus) error {
	out := make([]reportRow, 0, len(rows))
	for _, r := range rows {
		rr := reportRow{Budget: r.BudgetID, Name: r.Name, Scope: r.Scope, Period: r.Period, PeriodStart: r.PeriodStart, PeriodEnd: r.PeriodEnd,
			AmountUSD: r.AmountUSD, SpentUSD: r.SpentUSD, UsedPercent: usedPercent(r),
			ForecastUSD: r.ForecastUSD, ForecastLowUSD: r.ForecastLowUSD, ForecastHighUSD: r.ForecastHighUSD,
			State: r.State, EvaluatedAt: r.EvaluatedAt}
		if !r.ExhaustsAt.IsZero() {
			t := r.ExhaustsAt
			rr.ExhaustsAt = &t
		}
		out = append(out, rr)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"budgets": out})
}

func writeTable(w io.Writer, rows []schemas.BudgetStatus) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no budget status yet: set budget.path and run `aivis aggregate`, which evaluates the budgets every budget.interval")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "BUDGET\tSCOPE\tPERIOD\tAMOUNT USD\tSPENT USD\tUSED\tFORECAST USD (10–90%)\tEXHAUSTS\tSTATE\t")
	for _, r := range rows {
		exhausts := "-"
		if !r.ExhaustsAt.IsZero() {
			exhausts = r.ExhaustsAt.Format("2006-01-02 15:04Z")
		}
		period := r.Period + " " + r.PeriodStart.Format(time.DateOnly) + ".." + r.PeriodEnd.Format(time.DateOnly)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f%%\t%s (%s–%s)\t%s\t%s\t\n",
			report.Printable(r.BudgetID), report.Printable(r.Scope), report.Printable(period),
			r.AmountUSD.StringFixed(2), r.SpentUSD.StringFixed(2), usedPercent(r),
			r.ForecastUSD.StringFixed(2), r.ForecastLowUSD.StringFixed(2), r.ForecastHighUSD.StringFixed(2), exhausts, report.Printable(r.State))
	}
	return tw.Flush()
}
