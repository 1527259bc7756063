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
	fs.Int("per-kind", 0, "most recommendations listed per kind (0: no bound)")
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
	perKind, _ := e.fs.GetInt("per-kind")
	if limit < 0 || perKind < 0 {
		return fmt.Errorf("--limit %d, --per-kind %d: want 0 (no bound) or more", limit, perKind)
	}
	all := len(res.Recommendations)
	if perKind > 0 {
		kept := res.Recommendations[:0:0]
		n := map[string]int{}
		for _, r := range res.Recommendations {
			if n[r.Kind] < perKind {
				kept = append(kept, r)
			}
			n[r.Kind]++
		}
		res.Recommendations = kept
	}
	if limit > 0 && len(res.Recommendations) > limit {
		res.Recommendations = res.Recommendations[:limit]
	}
	if n := len(res.Recommendations); n < all && format == "table" {
		fmt.Fprintf(e.out, "(%d of %d recommendations, largest first; the total covers all)\n", n, all)
	}
	return savings.Write(e.out, res, format)
}
