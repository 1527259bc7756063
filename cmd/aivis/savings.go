package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/savings"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

func savingsReportFlags(fs *pflag.FlagSet) {
	fs.String("format", "table", "table or json")
	fs.Duration("since", 0, "length of the usage range (0: savings.lookback)")
	fs.String("until", "", "end of the range, RFC 3339 (empty: now)")
	fs.Int("limit", 20, "most recommendations listed, largest monthly saving first (0: all); the total covers all")
}

// runSavingsReport computes the recommendations over the range from
// ClickHouse with the configured catalog and savings rules; it stores
// and publishes nothing (the recommender in aggregate does).
func runSavingsReport(ctx context.Context, e *env) error {
	format, _ := e.fs.GetString("format")
	if format != "table" && format != "json" {
		return fmt.Errorf("--format %q: want table or json", format)
	}
	since, _ := e.fs.GetDuration("since")
	if since == 0 {
		since = e.cfg.Savings.Lookback
	}
	if since < time.Minute {
		return fmt.Errorf("--since %s: want at least 1m (e.g. 24h, 168h)", since)
	}
	until := time.Now().UTC().Truncate(time.Second)
	if s, _ := e.fs.GetString("until"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return fmt.Errorf("--until %q: want an RFC 3339 time such as 2026-11-29T00:00:00Z", s)
		}
		until = t.UTC()
	}
	rules := savings.DefaultRules()
	if e.cfg.Savings.Path != "" {
		var err error
		if rules, err = savings.LoadRules(e.cfg.Savings.Path); err != nil {
			return err
		}
	}
	cat, err := e.cfg.Enrich.LoadCatalog()
	if err != nil {
		return err
	}
	store, err := chsink.Open(ctx, e.cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer store.Close()
	res, err := savings.Build(ctx, store, cat, rules, until.Add(-since), until)
	if err != nil {
		return err
	}
	limit, _ := e.fs.GetInt("limit")
	if limit < 0 {
		return fmt.Errorf("--limit %d: want 0 (all) or more", limit)
	}
	if limit > 0 && len(res.Recommendations) > limit {
		if format == "table" {
			fmt.Fprintf(e.out, "(the %d largest of %d recommendations)\n", limit, len(res.Recommendations))
		}
		res.Recommendations = res.Recommendations[:limit]
	}
	return savings.Write(e.out, res, format)
}
