package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/internal/actor"
	"github.com/aivis-dev/aivis/internal/loadgen"
	"github.com/aivis-dev/aivis/internal/pipeline"
	"github.com/aivis-dev/aivis/internal/security"
	"github.com/aivis-dev/aivis/report"
)

func devFlags(fs *pflag.FlagSet) {
	trafficFlags(fs)
	fs.Lookup("rate").DefValue = "0"
	_ = fs.Set("rate", "0")
	fs.Lookup("rate").Usage = "also run the load generator at this many events per second against the embedded ingest (0: off)"
	fs.Bool("exit", false, "when the load generator is done: drain every stage, print the report and exit")
	reportFlags(fs)
	fs.Duration("drain-timeout", 2*time.Minute, "bound on the front-to-back drain")
}

// runDev runs every stage in one process, built by the same builder as the
// single-stage commands. Stop order on Ctrl-C (or when --exit and the load
// generator is done): the load generator → ingest stops accepting → enrich
// finishes the raw topic → aggregate finishes the enriched topic and emits
// every open window → the scorer scores them → the ops endpoints → Kafka
// and ClickHouse connections close.
func runDev(ctx context.Context, e *env) error {
	lg := loadgenConfig(e.fs)
	exit, _ := e.fs.GetBool("exit")
	drainTimeout, _ := e.fs.GetDuration("drain-timeout")
	opts := pipeline.Options{Stages: []pipeline.Stage{pipeline.Ingest, pipeline.Enrich, pipeline.Aggregate},
		Embedded: true, Drain: true, DrainTimeout: drainTimeout, Log: e.log}
	if e.cfg.Aggregate.ScoreAnomalies {
		opts.Stages = append(opts.Stages, pipeline.Anomaly)
	}
	var p *pipeline.Process
	if lg.Rate > 0 {
		if err := lg.Validate(); err != nil {
			return err
		}
		opts.Front = []pipeline.Member{{Name: "loadgen", Actor: actor.Func(func(ctx context.Context) error {
			lg.Metrics = p.Registry
			sink := &loadgen.HTTPSink{URL: p.IngestURL, Token: e.token}
			if e.cfg.Ingest.TLS.On() {
				// The generator trusts the certificate ingest serves.
				tc, err := security.ClientTLS{CAFile: e.cfg.Ingest.TLS.CertFile}.Config("ingest.tls.cert_file")
				if err != nil {
					return err
				}
				sink.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
			}
			stats, err := loadgen.Run(ctx, lg, sink, progressPrinter(e))
			fmt.Fprintf(e.out, "load generator done: %d events sent (%d distinct, %d duplicates, %d malformed, %d late) in %s\n",
				stats.Sent, stats.Distinct(), stats.Duplicates, stats.Malformed, stats.Late, stats.Elapsed.Round(time.Millisecond))
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("load generator: %w", err)
			}
			if !exit {
				<-ctx.Done()
			} else if ctx.Err() == nil {
				fmt.Fprintln(e.out, "draining: ingest → enrich → aggregate → ClickHouse …")
			}
			return nil
		})}}
	}
	applyMemoryLimit(e)
	var err error
	p, err = pipeline.Build(ctx, e.cfg, opts)
	if err != nil {
		return err
	}
	defer p.Close()

	fmt.Fprintf(e.out, "aivis dev is running\n  ingest:     POST %s\n", p.IngestURL)
	if e.token != "" {
		fmt.Fprintf(e.out, "  token:      %s\n", e.token)
	}
	fmt.Fprintf(e.out, "  kafka:      %v\n  clickhouse: %s (database %s)\n  metrics:    http://%s/metrics\n",
		p.Brokers, e.cfg.ClickHouse.Addr, e.cfg.ClickHouse.Database, e.cfg.MetricsAddr)
	if lg.Rate > 0 {
		fmt.Fprintf(e.out, "load generator: %.0f events/s for %s (event time ×%g)\n", lg.Rate, lg.Duration, lg.TimeScale)
		if sc, ok := loadgen.PlanScenario(lg); ok {
			fmt.Fprintln(e.out, sc)
		}
	}
	go func() {
		<-ctx.Done()
		fmt.Fprintln(e.out, "draining: ingest → enrich → aggregate → ClickHouse …")
	}()
	if err := p.Run(ctx); err != nil {
		return fmt.Errorf("running the pipeline: %w", err)
	}
	if exit && ctx.Err() == nil {
		opts, err := reportOptions(e.fs, e.cfg)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.out)
		if err := report.Report(context.Background(), p.Store, opts, e.out); err != nil {
			return err
		}
		// The embedded cluster, and the alerts on it, end with the process:
		// show what subscribers received.
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		alerts, err := readAlerts(rctx, p.Dialer())
		if err != nil {
			// The report is out; the alerts are also in cost_anomalies.
			e.log.Warn("reading the alerts raised back from the alerts topic", "err", err)
			return nil
		}
		printAlerts(e.out, alerts)
	}
	return nil
}

// progressPrinter prints the dev load generator's totals every 5 s.
func progressPrinter(e *env) func(loadgen.Stats) {
	last := time.Now()
	return func(s loadgen.Stats) {
		if time.Since(last) < 5*time.Second {
			return
		}
		last = time.Now()
		fmt.Fprintf(e.out, "  … %s: %d events sent (%d duplicates, %d malformed)\n", s.Elapsed.Round(time.Second), s.Sent, s.Duplicates, s.Malformed)
	}
}
