package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/internal/loadgen"
	"github.com/aivis-dev/aivis/internal/progress"
	"github.com/aivis-dev/aivis/rerate"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
	"github.com/aivis-dev/aivis/verify"
)

// progressInterval is how often long commands print their progress.
var progressInterval = progress.DefaultInterval

// progressFlag adds --progress to a long command (loadgen, rerate, verify,
// export focus).
func progressFlag(fs *pflag.FlagSet) {
	fs.Bool("progress", false, "print progress on standard error every "+progressInterval.String()+
		" (rate, done of total, time left); default: on when standard error is a terminal")
}

// startProgress returns the command's progress meter, printing on standard
// error, or nil (quiet) when progress is off.
func startProgress(e *env, name string) *progress.Meter {
	on, _ := e.fs.GetBool("progress")
	w := summaryOut(e)
	if !progress.Enabled(on, e.fs.Changed("progress"), w) {
		return nil
	}
	m := progress.New(w, name, progressInterval)
	m.Start()
	return m
}

func usdOf(p schemas.Picos128) string { return decimal.NewFromBigInt(p.Big(), -12).StringFixed(6) }

func signedUSD(p schemas.Picos128) string {
	if p.Sign() >= 0 {
		return "+" + usdOf(p)
	}
	return usdOf(p)
}

// loadgenSummary is the paragraph loadgen ends with.
func loadgenSummary(s loadgen.Stats, target string) string {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Sent) / s.Elapsed.Seconds()
	}
	return fmt.Sprintf("loadgen sent %s events to %s in %s (%.1f events/s): %s distinct, %s duplicates, %s malformed, %s late, %s out of order; %s send errors.",
		progress.Count(s.Sent), target, progress.Round(s.Elapsed), rate, progress.Count(s.Distinct()), progress.Count(s.Duplicates),
		progress.Count(s.Malformed), progress.Count(s.Late), progress.Count(s.OutOfOrder), progress.Count(s.Errors))
}

// rerateSummary is the paragraph rerate ends with.
func rerateSummary(res *rerate.Result, catalogVersion string, dry bool, elapsed time.Duration) string {
	span := res.From.Format(time.RFC3339) + " .. " + res.To.Format(time.RFC3339)
	cost := fmt.Sprintf("cost %s USD → %s USD (%s USD)", usdOf(res.OldPicos), usdOf(res.NewPicos), signedUSD(res.NewPicos.Sub(res.OldPicos)))
	if dry {
		return fmt.Sprintf("Dry run, nothing written: re-rating the %s events of %s under catalog %s would change the cost of %s and rewrite %s; %s. Took %s.",
			progress.Count(int64(res.Events)), span, catalogVersion, progress.Count(int64(res.Changed)), progress.Count(int64(res.Rewritten)), cost, progress.Round(elapsed))
	}
	return fmt.Sprintf("Re-rated the %s events of %s under catalog %s in %s: %s changed cost, %s rewritten as rating version %d, %s window corrections written; %s. `aivis verify` checks the result.",
		progress.Count(int64(res.Events)), span, catalogVersion, progress.Round(elapsed), progress.Count(int64(res.Changed)),
		progress.Count(int64(res.Rewritten)), res.Version, progress.Count(int64(res.Corrections)), cost)
}

// verifySummary is the paragraph verify ends with; src is nil when the
// raw topic was not checked (skipped says why).
func verifySummary(from, to time.Time, rec *chsink.Reconciliation, src *verify.Report, skipped string, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Verified %s .. %s in %s: ", from.Format(time.RFC3339), to.Format(time.RFC3339), progress.Round(elapsed))
	fmt.Fprintf(&b, "%s events in %d (day, model, team) groups, $%s", progress.Count(int64(rec.Events)), rec.Groups, rec.CostUSD)
	if len(rec.Diffs) == 0 {
		b.WriteString(", events and windows agree")
	} else {
		fmt.Fprintf(&b, ", %d groups differ between events and windows", len(rec.Diffs))
	}
	if src == nil {
		fmt.Fprintf(&b, "; raw topic not checked (%s).", skipped)
		return b.String()
	}
	dead := 0
	for _, n := range src.DeadLettered {
		dead += n
	}
	fmt.Fprintf(&b, "; raw topic %s: %s records read, %s checked, %s of %s event ids counted, %s duplicates, %s dead-lettered, %s missing.",
		src.RawTopic, progress.Count(int64(src.Records)), progress.Count(int64(src.Checked)), progress.Count(int64(src.CountedIDs)),
		progress.Count(int64(src.IDs)), progress.Count(int64(src.Duplicates)), progress.Count(int64(dead)), progress.Count(int64(len(src.Missing))))
	return b.String()
}
