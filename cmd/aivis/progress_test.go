package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/internal/loadgen"
	"github.com/aivis-dev/aivis/rerate"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
	"github.com/aivis-dev/aivis/verify"
)

// The final paragraphs of the long commands: what was done, the counts,
// the money and the time it took.
func TestLongCommandSummaries(t *testing.T) {
	from, to := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	res := &rerate.Result{From: from, To: to, Version: 3, Events: 12_000, Changed: 1_500, Rewritten: 2_000, Corrections: 42,
		OldPicos: schemas.PicosOf(1_250_000_000_000), NewPicos: schemas.PicosOf(1_000_000_000_000)}
	rec := &chsink.Reconciliation{Groups: 7, Events: 12_000, CostUSD: decimal.RequireFromString("1.25")}
	src := &verify.Report{Options: verify.Options{RawTopic: schemas.TopicRaw}, Result: verify.Result{Records: 12_100, Checked: 12_050,
		IDs: 12_000, CountedIDs: 11_990, Duplicates: 50, DeadLettered: map[string]int{"invalid": 10}, Missing: []verify.Missing{{EventID: "x"}}}}
	for _, c := range []struct{ name, got, want string }{
		{"loadgen", loadgenSummary(loadgen.Stats{Sent: 1_200, Duplicates: 12, Malformed: 6, Late: 3, Elapsed: 2 * time.Second}, "http://127.0.0.1:8080/v1/events"),
			"loadgen sent 1,200 events to http://127.0.0.1:8080/v1/events in 2s (600.0 events/s): 1,182 distinct, 12 duplicates, 6 malformed, 3 late, 0 out of order; 0 send errors."},
		{"rerate dry run", rerateSummary(res, "2026-11", true, 1500*time.Millisecond),
			"Dry run, nothing written: re-rating the 12,000 events of 2026-11-01T00:00:00Z .. 2026-11-02T00:00:00Z under catalog 2026-11 would change the cost of 1,500 and rewrite 2,000; cost 1.250000 USD → 1.000000 USD (-0.250000 USD). Took 1.5s."},
		{"rerate", rerateSummary(res, "2026-11", false, 12*time.Second),
			"Re-rated the 12,000 events of 2026-11-01T00:00:00Z .. 2026-11-02T00:00:00Z under catalog 2026-11 in 12s: 1,500 changed cost, 2,000 rewritten as rating version 3, 42 window corrections written; cost 1.250000 USD → 1.000000 USD (-0.250000 USD). `aivis verify` checks the result."},
		{"verify without the source check", verifySummary(from, to, rec, nil, "--source=false", 800*time.Millisecond),
			"Verified 2026-11-01T00:00:00Z .. 2026-11-02T00:00:00Z in 800ms: 12,000 events in 7 (day, model, team) groups, $1.25, events and windows agree; raw topic not checked (--source=false)."},
		{"verify", verifySummary(from, to, &chsink.Reconciliation{Groups: 7, Events: 12_000, CostUSD: decimal.RequireFromString("1.25"), Diffs: []chsink.Diff{{}}}, src, "", 3*time.Second),
			"Verified 2026-11-01T00:00:00Z .. 2026-11-02T00:00:00Z in 3s: 12,000 events in 7 (day, model, team) groups, $1.25, 1 groups differ between events and windows; raw topic aivis.usage.raw.v1: 12,100 records read, 12,050 checked, 11,990 of 12,000 event ids counted, 50 duplicates, 10 dead-lettered, 1 missing."},
	} {
		if c.got != c.want {
			t.Errorf("%s summary:\n got %s\nwant %s", c.name, c.got, c.want)
		}
	}
}

// Progress is quiet when standard error is not a terminal, and --progress
// switches it on; the summary ends the run either way.
func TestLoadgenProgressSwitchesOn(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"accepted":1}`))
	}))
	defer srv.Close()
	defer func(d time.Duration) { progressInterval = d }(progressInterval)
	progressInterval = 50 * time.Millisecond
	for _, on := range []bool{false, true} {
		args := []string{"loadgen", "--url", srv.URL, "--rate", "200", "--duration", "600ms"}
		if on {
			args = append(args, "--progress")
		}
		code, out, errOut := runCLI(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		if !strings.Contains(out, "loadgen sent ") || !strings.Contains(out, "events/s") {
			t.Errorf("%v: no summary in\n%s", args, out)
		}
		shown := strings.Contains(errOut, "loadgen: sending ") && strings.Contains(errOut, " of 120 events (")
		if on {
			t.Logf("stderr with --progress:\n%s\nstdout:\n%s", errOut, out)
		}
		if shown != on {
			t.Errorf("%v: progress shown %v, want %v; stderr:\n%s", args, shown, on, errOut)
		}
	}
}
