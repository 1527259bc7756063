// Package budget evaluates spend budgets against the cost windows in
// ClickHouse and warns before a budget is gone.
//
// Budgets come from a YAML file (budget.path; see docs/budgets.md), loaded
// strictly and reloaded when it changes. Each evaluation reads, per budget,
// the hourly spend of the last weeks and the exact spend of the current
// period from ClickHouse (cost_by_window for team, project, model and
// provider scopes; usage_events for API key and label scopes), forecasts
// the spend at period end and the date the budget runs out (forecast.go,
// pure functions), writes one row per budget to budget_status and
// publishes an alert the first time a period crosses its soft or hard
// threshold or is forecast to run out before it ends.
package budget
