package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/budget"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

func budgetReportFlags(fs *pflag.FlagSet) {
	fs.String("format", "table", "table or json")
}

// runBudgetReport prints budget_status as the evaluator in `aivis
// aggregate` last wrote it; it does not evaluate.
func runBudgetReport(ctx context.Context, e *env) error {
	format, _ := e.fs.GetString("format")
	if format != "table" && format != "json" {
		return fmt.Errorf("--format %q: want table or json", format)
	}
	store, err := chsink.Open(ctx, e.cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer store.Close()
	return budget.Report(ctx, store, format, e.out)
}
