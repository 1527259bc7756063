package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/reconcile"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

func reconcileFlags(fs *pflag.FlagSet) {
	fs.StringArray("bill", nil, "provider export to compare with (repeat for a cost and a usage export of one provider)")
	fs.String("format", "", "export format: "+strings.Join(reconcile.Formats, ", ")+" (default: detected from the content)")
	fs.String("from", "", "first UTC day compared, YYYY-MM-DD (default: the bill's first day)")
	fs.String("to", "", "end of the range, exclusive, YYYY-MM-DD (default: the day after the bill's last day)")
	fs.String("tolerance", "0.01", "largest difference that still agrees: USD (0.01) or a percentage of the billed amount (0.5%)")
	fs.String("catalog", "", "pricing catalog that maps model names (default: enrich.catalog_path, or the built-in one)")
	fs.Bool("json", false, "print JSON with exact decimal amounts instead of the table")
}

// runReconcile compares provider bills with aivis's cost per UTC day,
// provider and model, and prints the difference with its likely cause.
func runReconcile(ctx context.Context, e *env) error {
	files, _ := e.fs.GetStringArray("bill")
	if len(files) == 0 {
		return fmt.Errorf("--bill is required: a provider's cost export (e.g. --bill costs.json --format openai)")
	}
	format, _ := e.fs.GetString("format")
	var opts reconcile.Options
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &opts.From}, {"to", &opts.To}} {
		s, _ := e.fs.GetString(f.name)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return fmt.Errorf("--%s %q: want a UTC day, YYYY-MM-DD", f.name, s)
		}
		*f.dst = t
	}
	tolS, _ := e.fs.GetString("tolerance")
	tol, err := reconcile.ParseTolerance(tolS)
	if err != nil {
		return fmt.Errorf("--tolerance: %w", err)
	}
	opts.Tolerance = tol
	catalogPath := e.cfg.Enrich.CatalogPath
	if c, _ := e.fs.GetString("catalog"); c != "" {
		catalogPath = c
	}
	catalog, err := pricing.Load(catalogPath, e.cfg.Enrich.ContractsPath)
	if err != nil {
		return err
	}
	models := reconcile.NewModels(catalog)
	var bills []*reconcile.Bill
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("opening bill: %w", err)
		}
		b, err := reconcile.Import(format, name, f, models)
		f.Close()
		if err != nil {
			return fmt.Errorf("importing bill: %w", err)
		}
		bills = append(bills, b)
	}
	// The range the bills cover, unless --from/--to narrow it.
	from, to := opts.From, opts.To
	for _, b := range bills {
		for _, l := range b.Lines {
			if opts.From.IsZero() && (from.IsZero() || l.Day.Before(from)) {
				from = l.Day
			}
			if opts.To.IsZero() && !l.Day.Before(to) {
				to = l.Day.AddDate(0, 0, 1)
			}
		}
	}
	if from.IsZero() || to.IsZero() || !from.Before(to) {
		return fmt.Errorf("the bills have no AI usage in range: check the export and --format, or set --from and --to")
	}
	store, err := chsink.Open(ctx, e.cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer store.Close()
	aivis, err := reconcile.Load(ctx, store, from, to)
	if err != nil {
		return err
	}
	opts.From, opts.To = from, to
	res, err := reconcile.Compare(bills, aivis, models, opts)
	if err != nil {
		return err
	}
	if j, _ := e.fs.GetBool("json"); j {
		return reconcile.WriteJSON(e.out, res)
	}
	return reconcile.WriteTable(e.out, res)
}
