package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/focus"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

func exportFocusFlags(fs *pflag.FlagSet) {
	fs.String("from", "", "start of the range of windows, RFC 3339 or YYYY-MM-DD (required)")
	fs.String("to", "", "end of the range, exclusive, RFC 3339 or YYYY-MM-DD (required)")
	fs.String("format", focus.FormatCSV, "csv or parquet")
	fs.StringP("output", "o", "", "file to write (default: standard output)")
	fs.String("billing-account", "aivis", "BillingAccountId and BillingAccountName of every row")
	progressFlag(fs)
}

// runExportFocus writes the FOCUS 1.2 export of a range, then a summary on
// standard error (standard output may be the file).
func runExportFocus(ctx context.Context, e *env) error {
	var opts focus.Options
	fromS, _ := e.fs.GetString("from")
	toS, _ := e.fs.GetString("to")
	var err error
	if opts.From, err = parseWhen(fromS, time.Time{}); err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	if opts.Until, err = parseWhen(toS, time.Time{}); err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	opts.Format, _ = e.fs.GetString("format")
	opts.BillingAccountID, _ = e.fs.GetString("billing-account")
	if err := opts.Validate(); err != nil {
		return err
	}
	out := e.out
	path, _ := e.fs.GetString("output")
	var file *os.File
	if path != "" {
		if file, err = os.Create(path); err != nil {
			return fmt.Errorf("creating the export file: %w", err)
		}
		defer file.Close()
		out = file
	}
	store, err := chsink.Open(ctx, e.cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer store.Close()
	bw := bufio.NewWriterSize(out, 1<<20)
	began := time.Now()
	opts.Progress = startProgress(e, "export focus")
	sum, err := focus.Export(ctx, store, opts, bw)
	opts.Progress.Stop()
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && file != nil {
		err = file.Close()
	}
	if err != nil {
		return err
	}
	where := path
	if where == "" {
		where = "standard output"
	}
	fmt.Fprintf(summaryOut(e), "FOCUS 1.2 %s: %d rows, EffectiveCost %s USD, windows from %s to %s, written to %s in %s\n",
		opts.Format, sum.Rows, sum.EffectiveCost, opts.From.Format(time.RFC3339), opts.Until.Format(time.RFC3339), where,
		time.Since(began).Round(time.Millisecond))
	return nil
}

// summaryOut is where a command whose standard output is data prints its
// summary.
func summaryOut(e *env) io.Writer {
	if e.err != nil {
		return e.err
	}
	return os.Stderr
}
