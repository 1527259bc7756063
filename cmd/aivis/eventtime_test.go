package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

// TestFutureEventRealBroker: one event dated two days ahead must not drop
// the current events that share its partition (the topics have a single
// partition here, so every event does). Over HTTP it is refused at once
// with a field error on time and the 100 current events after it are
// counted; produced straight to the raw topic (bypassing ingest) it is
// dead-lettered as future and the 100 current events after it are
// counted too. Before the accept range and aggregate.max_future, the first
// got a 202 and moved the partition's watermark two days ahead, and every
// current event after it was dead-lettered as too_late.
func TestFutureEventRealBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs Kafka and ClickHouse")
	}
	brokers := testenv.Kafka(t)
	deleteAivisTopics(t, brokers)
	cfg, token := testConfig(t, brokers, 1)
	cfg.Aggregate.ScoreAnomalies = false
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p, ctx := startPipeline(t, cfg, token, log)

	event := func(id string, at time.Time) []byte {
		b, _ := json.Marshal(map[string]any{"schema_version": "1", "event_id": id, "time": at.Format(time.RFC3339Nano),
			"kind": "llm.request", "source": "future-test", "provider": "openai", "model": "model-a", "status": "ok",
			"labels": map[string]string{"team": "search"},
			"usage":  map[string]int64{"input_tokens": 100, "output_tokens": 10}})
		return b
	}
	post := func(body []byte) (int, ingest.Response) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.IngestURL, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+p.Token)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r ingest.Response
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("answer is not JSON: %q", b)
		}
		return resp.StatusCode, r
	}
	current := func(prefix string, from time.Time) {
		t.Helper()
		for i := range 100 {
			if code, r := post(event(fmt.Sprintf("%s-%03d", prefix, i), from.Add(time.Duration(i)*100*time.Millisecond))); code != http.StatusAccepted {
				t.Fatalf("current event %s-%03d: status %d %+v", prefix, i, code, r)
			}
		}
	}
	now := time.Now().UTC()

	// Over HTTP: told at once, nothing produced.
	code, r := post(event("ahead-http", now.Add(48*time.Hour)))
	if code != http.StatusUnprocessableEntity || len(r.Errors) != 1 || r.Errors[0].Field != "time" ||
		r.Errors[0].Code != schemas.CodeOutOfRange || !strings.Contains(r.Errors[0].Message, "ahead of the ingest clock") {
		t.Errorf("event two days ahead over HTTP: status %d %+v; want 422 with a field error on time", code, r)
	}
	current("http", now.Add(-2*time.Minute))

	// Straight to the raw topic: dead-lettered, the watermark stays.
	raw, err := kgo.NewClient(kgo.SeedBrokers(p.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.ProduceSync(ctx, &kgo.Record{Topic: schemas.TopicRaw, Key: []byte("ahead-raw"), Value: event("ahead-raw", now.Add(48*time.Hour))}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	current("raw", now.Add(-time.Minute))

	if err := p.Drain(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	var requests int64
	var ids uint64
	if err := p.Store.QueryRow(ctx, "SELECT toInt64(sum(requests)) FROM cost_by_window").Scan(&requests); err != nil {
		t.Fatal(err)
	}
	if err := p.Store.QueryRow(ctx, "SELECT count() FROM usage_events_final WHERE event_id LIKE 'ahead-%'").Scan(&ids); err != nil {
		t.Fatal(err)
	}
	if requests != 200 || ids != 0 {
		t.Errorf("cost_by_window counts %d requests and usage_events_final %d future events; want the 200 current ones and no future one", requests, ids)
	}
	reasons := deadLetterReasons(t, ctx, p.Brokers, 1)
	if reasons[schemas.ReasonFuture] != 1 || len(reasons) != 1 {
		t.Errorf("dead letters by reason = %v, want exactly 1 future", reasons)
	}
}
