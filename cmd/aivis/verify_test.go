package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/internal/pipeline"
	"github.com/aivis-dev/aivis/schemas"
)

// TestVerifySourceCatchesLossInBothTables runs the real pipeline on the
// embedded cluster with duplicates, a record that is not JSON and a
// too-late event, then takes one event out of ClickHouse from both
// usage_events and its window row, as a loss between the topic and the
// tables would: the events-vs-windows check still agrees, and only the
// check from the raw topic names the event and fails `aivis verify`.
func TestVerifySourceCatchesLossInBothTables(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs ClickHouse")
	}
	cfg, token := testConfig(t, nil, 3)
	addr, db := cfg.ClickHouse.Addr, cfg.ClickHouse.Database
	p, ctx := startPipeline(t, cfg, token, slog.New(slog.NewTextHandler(io.Discard, nil)))

	base := time.Now().UTC().Truncate(time.Minute).Add(-30 * time.Minute)
	event := func(id string, at time.Time, i int) []byte {
		b, _ := json.Marshal(map[string]any{"schema_version": "1", "event_id": id, "time": at.Format(time.RFC3339Nano),
			"kind": "llm.request", "source": "verify-gateway", "provider": "openai", "model": "model-a", "status": "ok",
			"labels": map[string]string{"team": []string{"search", "chat"}[i%2]},
			"usage":  map[string]int64{"input_tokens": int64(100 + i), "cache_read_input_tokens": int64(i), "output_tokens": int64(10 + i)}})
		return b
	}
	var lines [][]byte
	for i := range 60 {
		lines = append(lines, event(fmt.Sprintf("vs-%04d", i), base.Add(time.Duration(i)*time.Second), i))
	}
	for i := 0; i < 60; i += 7 {
		lines = append(lines, lines[i]) // resent by a client
	}
	post := func(body []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.IngestURL, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+p.Token)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST: %d %s", resp.StatusCode, msg)
		}
	}
	post(bytes.Join(lines, []byte("\n")))
	raw, err := kgo.NewClient(kgo.SeedBrokers(p.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.ProduceSync(ctx, &kgo.Record{Topic: schemas.TopicRaw, Key: []byte("broken"), Value: []byte(`{not json`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // let the watermarks move before the too-late event
	// More than aggregate.late_horizon behind the stream, but in the range.
	// Ingest refuses it, so it can only come straight to the raw topic.
	if err := raw.ProduceSync(ctx, &kgo.Record{Topic: schemas.TopicRaw, Key: []byte("vs-too-late"), Value: event("vs-too-late", base.Add(-30*time.Hour), 1)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := p.Drain(2 * time.Minute); err != nil {
		t.Fatal(err)
	}

	from, to := base.Add(-48*time.Hour), base.Add(time.Hour)
	verifyArgs := []string{"verify", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339),
		"--kafka.brokers", strings.Join(p.Brokers, ","), "--clickhouse.addr", addr, "--clickhouse.database", db, "--log_level", "warn"}
	code, stdout, stderr := runCLI(verifyArgs...)
	t.Logf("aivis verify:\n%s%s", stdout, stderr)
	if code != 0 {
		t.Fatalf("aivis verify on an untouched pipeline: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"events vs windows", "OK: events and windows agree exactly",
		"raw topic vs ClickHouse (" + schemas.TopicRaw, "71 records read: 71 in the range",
		"60 of 61 event ids counted", "9 records repeat an event id", "invalid_json 1", "too_late 1", "too_late: 1 records are accounted for",
		"OK: every raw event in the range is counted"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("aivis verify output lacks %q:\n%s", want, stdout)
		}
	}

	const lost = "vs-0011"
	loseFromBothTables(t, ctx, p, addr, db, lost)
	if rec, err := p.Store.Reconcile(ctx, from, to); err != nil || len(rec.Diffs) != 0 || rec.Events != 59 {
		t.Fatalf("events vs windows after the loss: %v %+v, want 59 events and no difference", err, rec)
	}
	if code, stdout, stderr := runCLI(append(verifyArgs, "--source=false")...); code != 0 || !strings.Contains(stdout, "skipped (--source=false)") {
		t.Errorf("aivis verify --source=false: exit %d, want 0 (the old check cannot see this loss)\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(verifyArgs...)
	t.Logf("aivis verify after the loss:\n%s%s", stdout, stderr)
	if code != 1 {
		t.Fatalf("aivis verify after losing %s: exit %d, want 1\n%s%s", lost, code, stdout, stderr)
	}
	var missing []string
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, "MISSING") {
			missing = append(missing, line)
		}
	}
	if len(missing) != 1 || !strings.Contains(missing[0], "event_id "+lost+" ") {
		t.Errorf("MISSING lines %q, want exactly one naming %s:\n%s", missing, lost, stdout)
	}
	if !strings.Contains(stderr, "1 raw-topic records not accounted for") {
		t.Errorf("stderr %q does not say why verify failed", stderr)
	}
}

// loseFromBothTables deletes event id from usage_events and takes its
// numbers out of one window row of the same day, model and team, so that
// the two tables still agree, and waits for both mutations to finish.
func loseFromBothTables(t *testing.T, ctx context.Context, p *pipeline.Pipeline, addr, db, id string) {
	t.Helper()
	var (
		at                                           time.Time
		model, team                                  string
		input, cacheRead, cacheWrite, output, reason int64
		cost                                         decimal.Decimal
	)
	if err := p.Store.QueryRow(ctx, `SELECT time, model, team, input_tokens, cache_read_input_tokens, cache_write_input_tokens,
output_tokens, reasoning_output_tokens, cost_usd FROM usage_events_final WHERE event_id = ?`, id).
		Scan(&at, &model, &team, &input, &cacheRead, &cacheWrite, &output, &reason, &cost); err != nil {
		t.Fatalf("reading event %s: %v", id, err)
	}
	var (
		windowStart       time.Time
		provider, project string
		srcPartition      uint32
		throughOffset     int64
	)
	if err := p.Store.QueryRow(ctx, `SELECT window_start, provider, project, src_partition, through_offset FROM cost_windows FINAL
WHERE toDate(window_start) = toDate(toDateTime(?)) AND model = ? AND team = ? AND requests > 0 ORDER BY window_start, src_partition, through_offset LIMIT 1`,
		at.Unix(), model, team).Scan(&windowStart, &provider, &project, &srcPartition, &throughOffset); err != nil {
		t.Fatalf("finding a window row of %s: %v", id, err)
	}
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, Auth: ch.Auth{Database: db}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`ALTER TABLE usage_events DELETE WHERE event_id = ?`, id)
	exec(`ALTER TABLE cost_windows UPDATE requests = toUInt64(requests - 1), input_tokens = input_tokens - ?,
cache_read_input_tokens = cache_read_input_tokens - ?, cache_write_input_tokens = cache_write_input_tokens - ?,
output_tokens = output_tokens - ?, reasoning_output_tokens = reasoning_output_tokens - ?,
cost_usd = cost_usd - toDecimal128(?, 12)
WHERE window_start = toDateTime(?) AND provider = ? AND model = ? AND team = ? AND project = ? AND src_partition = ? AND through_offset = ?`,
		input, cacheRead, cacheWrite, output, reason, cost.String(),
		windowStart.Unix(), provider, model, team, project, srcPartition, throughOffset)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var pending uint64
		if err := p.Store.QueryRow(ctx, `SELECT count() FROM system.mutations WHERE database = currentDatabase() AND is_done = 0`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ClickHouse mutations still running after 30 s", pending)
		}
	}
}
