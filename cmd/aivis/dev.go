package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/aivis-dev/aivis/internal/loadgen"
	"github.com/aivis-dev/aivis/internal/obs"
	"github.com/aivis-dev/aivis/internal/pipeline"
	"github.com/aivis-dev/aivis/report"
)

func devFlags(fs *pflag.FlagSet) {
	loadgenFlags(fs)
	fs.Lookup("rate").DefValue = "0"
	_ = fs.Set("rate", "0")
	fs.Lookup("rate").Usage = "also run the load generator at this many events per second against the embedded ingest (0: off)"
	fs.Bool("exit", false, "when the load generator is done: drain every stage, print the report and exit")
	reportFlags(fs)
	fs.Duration("drain-timeout", 2*time.Minute, "bound on the front-to-back drain")
}

// runDev runs every stage in one process. Stop order on Ctrl-C (or when
// --exit and the load generator is done): ingest stops accepting → enrich
// finishes the raw topic → aggregate finishes the enriched topic and emits
// every open window → the scorer scores them → Kafka and ClickHouse
// connections close.
func runDev(ctx context.Context, e *env) error {
	p, err := pipeline.Start(ctx, e.cfg, e.token, e.log)
	if err != nil {
		return err
	}
	defer p.Close()
	ready := obs.NewReadiness()
	ready.Add("sink", p.Agg.Ready)
	opsCtx, stopOps := context.WithCancel(context.Background())
	defer stopOps()
	go func() { _ = obs.Serve(opsCtx, e.cfg.MetricsAddr, ready, e.log) }()

	fmt.Fprintf(e.out, "aivis dev is running\n  ingest:     POST %s\n", p.IngestURL)
	if p.Token != "" {
		fmt.Fprintf(e.out, "  token:      %s\n", p.Token)
	}
	fmt.Fprintf(e.out, "  kafka:      %v\n  clickhouse: %s (database %s)\n  metrics:    http://%s/metrics\n",
		p.Brokers, e.cfg.ClickHouse.Addr, e.cfg.ClickHouse.Database, e.cfg.MetricsAddr)

	lg := loadgenConfig(e.fs)
	exit, _ := e.fs.GetBool("exit")
	if lg.Rate > 0 {
		if err := lg.Validate(); err != nil {
			return err
		}
		fmt.Fprintf(e.out, "load generator: %.0f events/s for %s (event time ×%g)\n", lg.Rate, lg.Duration, lg.TimeScale)
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error {
			stats, err := loadgen.Run(gctx, lg, &loadgen.HTTPSink{URL: p.IngestURL, Token: p.Token}, progressPrinter(e))
			fmt.Fprintf(e.out, "load generator done: %d events sent (%d distinct, %d duplicates, %d malformed, %d late) in %s\n",
				stats.Sent, stats.Distinct(), stats.Duplicates, stats.Malformed, stats.Late, stats.Elapsed.Round(time.Millisecond))
			return err
		})
		if err := g.Wait(); err != nil && ctx.Err() == nil {
			return fmt.Errorf("load generator: %w", err)
		}
	}
	if !exit || lg.Rate <= 0 {
		<-ctx.Done()
	}
	drainTimeout, _ := e.fs.GetDuration("drain-timeout")
	fmt.Fprintln(e.out, "draining: ingest → enrich → aggregate → ClickHouse …")
	if err := p.Drain(drainTimeout); err != nil {
		return fmt.Errorf("draining the pipeline: %w", err)
	}
	if exit && ctx.Err() == nil {
		opts, err := reportOptions(e.fs)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.out)
		return report.Report(context.Background(), p.Store, opts, e.out)
	}
	return nil
}
