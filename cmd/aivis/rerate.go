package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/report"
	"github.com/aivis-dev/aivis/rerate"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

func rerateFlags(fs *pflag.FlagSet) {
	fs.String("from", "", "start of the range, RFC 3339 or YYYY-MM-DD (required)")
	fs.String("to", "", "end of the range, exclusive, RFC 3339 or YYYY-MM-DD (required)")
	fs.String("catalog", "", "pricing catalog to apply (default: enrich.catalog_path, or the built-in one)")
	fs.Bool("dry-run", false, "print what would change and write nothing")
	progressFlag(fs)
}

func runRerate(ctx context.Context, e *env) error {
	fromS, _ := e.fs.GetString("from")
	toS, _ := e.fs.GetString("to")
	if fromS == "" || toS == "" {
		return fmt.Errorf("--from and --to are required (e.g. --from 2026-11-25 --to 2026-11-26)")
	}
	from, err := parseWhen(fromS, time.Time{})
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	to, err := parseWhen(toS, time.Time{})
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	catalogPath := e.cfg.Enrich.CatalogPath
	if c, _ := e.fs.GetString("catalog"); c != "" {
		catalogPath = c
	}
	enrichCfg := e.cfg.Enrich
	enrichCfg.CatalogPath = catalogPath
	catalog, err := enrichCfg.LoadCatalog()
	if err != nil {
		return err
	}
	dry, _ := e.fs.GetBool("dry-run")
	began := time.Now()
	store, err := chsink.Open(ctx, e.cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	meter := startProgress(e, "rerate")
	res, err := rerate.RunWithProgress(ctx, store, catalog, from, to, e.cfg.Aggregate.Window, dry, meter)
	meter.Stop()
	if err != nil {
		return err
	}
	printRerate(e.out, res, catalog.Version(), dry, time.Since(began))
	return nil
}

// printRerate writes what rerate did, or would do with dry, and the
// summary paragraph. Provider and model come from producers and print
// escaped (report.Printable).
func printRerate(w io.Writer, res *rerate.Result, catalogVersion string, dry bool, elapsed time.Duration) {
	usd := func(p schemas.Picos128) string { return decimal.NewFromBigInt(p.Big(), -12).StringFixed(6) }
	fmt.Fprintf(w, "re-rating %s .. %s under catalog %s: %d events, %d change cost, %d to rewrite\n",
		res.From.Format(time.RFC3339), res.To.Format(time.RFC3339), catalogVersion, res.Events, res.Changed, res.Rewritten)
	fmt.Fprintf(w, "  cost USD %s → %s\n", usd(res.OldPicos), usd(res.NewPicos))
	for _, m := range res.Models {
		if m.OldPicos != m.NewPicos {
			fmt.Fprintf(w, "  %-12s %-32s %7d of %d events  %s → %s\n",
				report.Printable(m.Provider), report.Printable(m.Model), m.Changed, m.Events, usd(m.OldPicos), usd(m.NewPicos))
		}
	}
	fmt.Fprintln(w, rerateSummary(res, catalogVersion, dry, elapsed))
}
