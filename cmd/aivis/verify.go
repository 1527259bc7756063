package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/aivis-dev/aivis/report"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
	"github.com/aivis-dev/aivis/verify"
)

func verifyFlags(fs *pflag.FlagSet) {
	fs.String("from", "", "start of the event-time range, RFC 3339 or YYYY-MM-DD (default: 7 days ago)")
	fs.String("to", "", "end of the event-time range, exclusive, RFC 3339 or YYYY-MM-DD (default: now + 1h)")
	fs.Bool("source", true, "also check every event of the raw topic against ClickHouse and the dead-letter topic (needs kafka.brokers; on by default when they are set)")
	fs.Duration("margin", time.Hour, "read raw records whose Kafka timestamp is up to this much outside the range; raise it to aggregate.late_horizon to catch events produced late")
	fs.Int("max-events", 2_000_000, "refuse a source check whose scan covers more raw or dead-letter records than this (memory: about 150 bytes per event id)")
	fs.String("raw-topic", schemas.TopicRaw, "raw topic the source check reads")
	fs.String("deadletter-topic", schemas.TopicDeadLetter, "dead-letter topic the source check reads")
	progressFlag(fs)
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

// verifyMismatch makes the command exit non-zero after printing what
// disagrees.
type verifyMismatch struct{ diffs, missing int }

func (v verifyMismatch) Error() string {
	var parts []string
	if v.missing > 0 {
		parts = append(parts, fmt.Sprintf("%d raw-topic records not accounted for", v.missing))
	}
	if v.diffs > 0 {
		parts = append(parts, fmt.Sprintf("%d differences between usage_events and cost_windows", v.diffs))
	}
	return strings.Join(parts, "; ")
}

// runVerify runs two checks over the range: events against windows
// (ClickHouse alone), then, with Kafka, the raw topic against ClickHouse
// and the dead-letter topic. A loss that hits both tables passes the first
// and fails the second.
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
	source, _ := e.fs.GetBool("source")
	if source && len(e.cfg.Kafka.Brokers) == 0 && e.fs.Changed("source") {
		return fmt.Errorf("--source: %w", requireBrokers(e))
	}
	store, err := chsink.Open(ctx, e.cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer store.Close()

	began := time.Now()
	meter := startProgress(e, "verify")
	defer meter.Stop()
	fmt.Fprintf(e.out, "verify %s .. %s (event time)\n", from.Format(time.RFC3339), to.Format(time.RFC3339))
	meter.Phase("reconciling events and windows", "groups", 0)
	res, err := store.Reconcile(ctx, from, to)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "events vs windows (%s vs %s): %d (day, model, team) groups, %d events, $%s\n",
		chsink.ViewEvents, chsink.TableWindows, res.Groups, res.Events, res.CostUSD)
	if len(res.Diffs) == 0 {
		fmt.Fprintln(e.out, "  OK: events and windows agree exactly")
	}
	for _, d := range res.Diffs {
		// Model and team come from producers: escaped, they cannot drive
		// the terminal.
		fmt.Fprintf(e.out, "DIFF day=%s model=%s team=%s\n  events:  %s\n  windows: %s\n",
			d.Day, report.Printable(d.Model), report.Printable(d.Team), d.Events, d.Windows)
	}
	mismatch := verifyMismatch{diffs: len(res.Diffs)}

	var src *verify.Report
	skipped := ""
	switch {
	case !source:
		skipped = "--source=false"
		fmt.Fprintln(e.out, "raw topic vs ClickHouse: skipped (--source=false)")
	case len(e.cfg.Kafka.Brokers) == 0:
		skipped = "no kafka.brokers configured"
		fmt.Fprintln(e.out, "raw topic vs ClickHouse: skipped (no kafka.brokers configured; set them to check every raw event)")
	default:
		o := verify.Options{From: from, To: to, Progress: meter}
		o.Margin, _ = e.fs.GetDuration("margin")
		o.MaxEvents, _ = e.fs.GetInt("max-events")
		o.RawTopic, _ = e.fs.GetString("raw-topic")
		o.DeadLetterTopic, _ = e.fs.GetString("deadletter-topic")
		d, err := e.cfg.Kafka.Dialer()
		if err != nil {
			return err
		}
		rep, err := verify.Check(ctx, d, store, o)
		var tooMany *verify.TooManyEventsError
		if errors.As(err, &tooMany) {
			return fmt.Errorf("checking the raw topic: %w; use --from/--to or --margin, or --max-events (or --source=false to skip this check)", err)
		}
		if err != nil {
			return fmt.Errorf("checking the raw topic (--source=false skips it): %w", err)
		}
		printSourceReport(e.out, rep)
		mismatch.missing = len(rep.Missing)
		src = rep
	}
	meter.Stop()
	fmt.Fprintln(e.out, verifySummary(from, to, res, src, skipped, time.Since(began)))
	if mismatch.diffs > 0 || mismatch.missing > 0 {
		return mismatch
	}
	fmt.Fprintln(e.out, "OK")
	return nil
}

func printSourceReport(w io.Writer, r *verify.Report) {
	fmt.Fprintf(w, "raw topic vs ClickHouse (%s, records with Kafka timestamps %s .. %s, the range ± --margin %s):\n",
		r.RawTopic, r.ScanFrom().Format(time.RFC3339), r.ScanTo().Format(time.RFC3339), r.Margin)
	fmt.Fprintf(w, "  %d records read: %d in the range, %d with an event time outside it (not checked)\n",
		r.Records, r.Checked, r.OutsideRange)
	fmt.Fprintf(w, "  %d of %d event ids counted in %s; %d records repeat an event id (duplicates)\n",
		r.CountedIDs, r.IDs, chsink.ViewEvents, r.Duplicates)
	reasons := make([]string, 0, len(r.DeadLettered))
	dead := 0
	for reason, n := range r.DeadLettered {
		reasons = append(reasons, fmt.Sprintf("%s %d", reason, n))
		dead += n
	}
	sort.Strings(reasons)
	fmt.Fprintf(w, "  %d records dead-lettered (%s, %d dead letters read from %s)", dead, r.DeadLetterTopic,
		r.DeadLetters, r.ScanFrom().Format(time.RFC3339))
	if len(reasons) > 0 {
		fmt.Fprintf(w, ": %s", strings.Join(reasons, ", "))
	}
	fmt.Fprintln(w)
	if r.UnreadableDeadLetters > 0 {
		fmt.Fprintf(w, "  %d dead letters match no record (not a dead-letter envelope, or no event id in their original bytes)\n", r.UnreadableDeadLetters)
	}
	if n := r.TooLate(); n > 0 {
		fmt.Fprintf(w, "  too_late: %d records are accounted for by a dead letter but not counted in ClickHouse; replay them from %s if they should count\n",
			n, r.DeadLetterTopic)
	}
	for _, m := range r.Missing {
		name := "record without an event_id"
		if m.EventID != "" {
			// Ids come from producers: escaped, they cannot drive the
			// terminal.
			name = "event_id " + report.Printable(m.EventID)
		}
		fmt.Fprintf(w, "MISSING %s (%s[%d]@%d", name, r.RawTopic, m.Partition, m.Offset)
		if m.Records > 1 {
			fmt.Fprintf(w, ", %d records", m.Records)
		}
		fmt.Fprintf(w, ") %s\n", m.Why)
	}
	if len(r.Missing) == 0 {
		fmt.Fprintln(w, "  OK: every raw event in the range is counted, a duplicate, or dead-lettered")
	}
}
