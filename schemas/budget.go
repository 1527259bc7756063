package schemas

import (
	"time"

	"github.com/shopspring/decimal"
)

// Budget states, from best to worst.
const (
	BudgetOK     = "ok"      // within thresholds and forecast
	BudgetAtRisk = "at_risk" // forecast to run out before the period ends
	BudgetSoft   = "soft"    // spent reached the soft threshold
	BudgetHard   = "hard"    // spent reached the hard threshold
)

// BudgetStatus is one evaluation of one budget in one period: a row of the
// budget_status table, where the newest evaluation of a (budget, period)
// replaces the older ones.
type BudgetStatus struct {
	BudgetID string
	Name     string
	// Scope is the scope as key=value pairs (team=search,model=gpt-4o), or
	// "org" for all spend.
	Scope       string
	Period      string
	Timezone    string
	PeriodStart time.Time
	PeriodEnd   time.Time
	// Money is exact; SoftUSD is zero when the budget has no soft
	// threshold.
	AmountUSD, SoftUSD, HardUSD, SpentUSD decimal.Decimal
	// The forecast of spend at period end, with an interval: estimates,
	// but exact amounts of whole picodollars once made (the spend so far
	// plus the forecast rest, rounded half to even).
	ForecastUSD, ForecastLowUSD, ForecastHighUSD decimal.Decimal
	ForecastMethod                               string
	// ExhaustsAt is when spend reached or is forecast to reach the amount
	// within the period; zero when it is not forecast to.
	ExhaustsAt time.Time
	State      string
	// Alerted lists the thresholds (soft, hard, forecast) already alerted
	// in this period, so that each alerts once.
	Alerted     []string
	EvaluatedAt time.Time
}
