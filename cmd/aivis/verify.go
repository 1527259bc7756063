package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/report"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

func verifyFlags(fs *pflag.FlagSet) {
	fs.String("from", "", "start of the range, RFC 3339 or YYYY-MM-DD (default: 7 days ago)")
	fs.String("to", "", "end of the range, exclusive, RFC 3339 or YYYY-MM-DD (default: now)")
}

func parseWhen(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2026-11-26T10:00:00Z) or a date (2026-11-26)", s)
}

// errVerifyMismatch makes the command exit non-zero after printing the diff.
type verifyMismatch int

func (v verifyMismatch) Error() string {
	return fmt.Sprintf("%d differences between usage_events and cost_windows", int(v))
}

func runVerify(ctx context.Context, e *env) error {
	now := time.Now().UTC()
	fromS, _ := e.fs.GetString("from")
	toS, _ := e.fs.GetString("to")
	from, err := parseWhen(fromS, now.Add(-7*24*time.Hour))
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	to, err := parseWhen(toS, now.Add(time.Hour))
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	store, err := chsink.Open(ctx, e.cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer store.Close()
	res, err := store.Reconcile(ctx, from, to)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "verify %s .. %s: %d (day, model, team) groups, %d events, $%s\n",
		from.Format(time.RFC3339), to.Format(time.RFC3339), res.Groups, res.Events, res.CostUSD)
	if len(res.Diffs) == 0 {
		fmt.Fprintln(e.out, "OK: events and windows agree exactly")
		return nil
	}
	for _, d := range res.Diffs {
		// Model and team come from producers: escaped, they cannot drive
		// the terminal.
		fmt.Fprintf(e.out, "DIFF day=%s model=%s team=%s\n  events:  %s\n  windows: %s\n",
			d.Day, report.Printable(d.Model), report.Printable(d.Team), d.Events, d.Windows)
	}
	return verifyMismatch(len(res.Diffs))
}
