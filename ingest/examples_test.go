package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/ingest/otlp"
	"github.com/aivis-dev/aivis/schemas"
)

// captureProducer acknowledges every record and keeps it.
type captureProducer struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

func (p *captureProducer) ProduceSync(_ context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(kgo.ProduceResults, len(rs))
	for i, r := range rs {
		// Ingest reuses its records once ProduceSync has returned.
		c := *r
		c.Key, c.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
		p.recs = append(p.recs, &c)
		out[i] = kgo.ProduceResult{Record: r}
	}
	return out
}

func (p *captureProducer) events(t *testing.T) []schemas.Event {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []schemas.Event
	for _, r := range p.recs {
		var e schemas.Event
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	p.recs = nil
	return out
}

// example is one file of docs/examples, with how the docs shift its fixed
// times to now.
type example struct {
	file, path string
	// fixed is the part of the file's times that the docs' sed command
	// replaces; shift is that command, current what it puts there at now.
	fixed, shift string
	current      func(now time.Time) string
	// fixedTime is the newest event time the file holds as it is.
	fixedTime time.Time
}

var examples = map[string]example{
	"litellm": {file: "litellm-callback.json", path: "/v1/adapters/litellm",
		// Unix seconds 1772446530.25 … 1772446601.75: the first seven digits
		// of now's, less one, put them 7 to 25 minutes ago.
		fixed: "1772446", shift: `sed "s/1772446/$((now / 1000 - 1))/g"`,
		current:   func(now time.Time) string { return strconv.FormatInt(now.Unix()/1000-1, 10) },
		fixedTime: time.Unix(1772446600, 5e8)},
	"opentelemetry": {file: "otlp-genai-trace.json", path: "/v1/traces",
		// Unix nanoseconds 1772449200000000000 and 1772449202310000000:
		// 10 to 20 seconds ago.
		fixed: "177244920", shift: `sed "s/177244920/$((now / 10 - 1))/g"`,
		current:   func(now time.Time) string { return strconv.FormatInt(now.Unix()/10-1, 10) },
		fixedTime: time.Unix(1772449202, 31e7)},
	"opentelemetry metrics": {file: "otlp-genai-metrics.json", path: "/v1/metrics",
		// Unix nanoseconds 1772450000000000000 and 1772450060000000000:
		// 10 to 20 seconds ago, and the interval's end a minute later
		// (within the allowed clock skew).
		fixed: "177245000", shift: `sed "s/177245000/$((now / 10 - 1))/g"`,
		current:   func(now time.Time) string { return strconv.FormatInt(now.Unix()/10-1, 10) },
		fixedTime: time.Unix(1772450000, 0)},
	"openai-compatible gateway": {file: "openai-envelope.json", path: "/v1/adapters/openai",
		fixed: "2026-11-26T10:00:00.120Z", shift: `sed "s/2026-11-26T10:00:00.120Z/$(date -u +%Y-%m-%dT%H:%M:%SZ)/"`,
		current:   func(now time.Time) string { return now.UTC().Format("2006-01-02T15:04:05Z") },
		fixedTime: time.Date(2026, 11, 26, 10, 0, 0, 12e7, time.UTC)},
}

// TestDocumentedExamples posts every example of docs/integrations.md to a
// real ingest handler and checks what reaches Kafka, so the documentation
// cannot drift from what aivis accepts. Each is posted as the docs say to
// send it, its times shifted to now: it must be accepted. As the file holds
// it, with its fixed past time, it must be refused at once naming time
// (once that time is older than ingest accepts), never accepted and then
// dropped by the windows.
func TestDocumentedExamples(t *testing.T) {
	const token = "aivis_docs_example_token"
	cfg := ingest.DefaultConfig()
	cfg.Producers = []ingest.ProducerToken{{Name: "docs", TokenSHA256: ingest.HashToken(token)}}
	prod := &captureProducer{}
	srv, err := ingest.New(cfg, prod, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/integrations.md")
	if err != nil {
		t.Fatal(err)
	}
	send := func(path string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		return rec
	}
	read := func(t *testing.T, ex example) []byte {
		t.Helper()
		body, err := os.ReadFile("../docs/examples/" + ex.file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(body, []byte(ex.fixed)) {
			t.Fatalf("%s no longer holds %q; update the docs' sed command and this table", ex.file, ex.fixed)
		}
		if !strings.Contains(string(doc), ex.shift) || !strings.Contains(string(doc), "docs/examples/"+ex.file) {
			t.Errorf("docs/integrations.md does not show how to send %s with a current time (%s)", ex.file, ex.shift)
		}
		return body
	}
	post := func(t *testing.T, name string) {
		t.Helper()
		ex := examples[name]
		body := read(t, ex)
		body = bytes.ReplaceAll(body, []byte(ex.fixed), []byte(ex.current(time.Now())))
		if rec := send(ex.path, body); rec.Code/100 != 2 || rec.Header().Get("X-Aivis-Spans-Accepted") == "0" {
			t.Fatalf("POST %s with %s, times shifted to now: status %d: %s", ex.path, ex.file, rec.Code, rec.Body.String())
		}
	}

	t.Run("litellm", func(t *testing.T) {
		post(t, "litellm")
		evs := prod.events(t)
		if len(evs) != 2 {
			t.Fatalf("%d events, want 2", len(evs))
		}
		for _, e := range evs {
			if e.Source != "litellm" || e.ProviderCostUSD == "" || e.Usage == nil || e.Model == "" {
				t.Errorf("LiteLLM payload normalized to %+v", e)
			}
		}
		if !strings.Contains(string(doc), "examples/litellm-callback.json") || !strings.Contains(string(doc), "/v1/adapters/litellm") {
			t.Error("docs/integrations.md does not show the LiteLLM example")
		}
	})

	t.Run("opentelemetry", func(t *testing.T) {
		post(t, "opentelemetry")
		evs := prod.events(t)
		if len(evs) == 0 {
			t.Fatal("the OTLP example produced no events")
		}
		for _, e := range evs {
			if !strings.HasPrefix(e.EventID, "otlp:") || e.Usage == nil || schemas.Get(e.Usage.InputTokens) == 0 {
				t.Errorf("GenAI span normalized to %+v", e)
			}
		}
		if !strings.Contains(string(doc), "examples/otlp-genai-trace.json") || !strings.Contains(string(doc), "/v1/traces") {
			t.Error("docs/integrations.md does not show the OpenTelemetry example")
		}
	})

	t.Run("opentelemetry metrics", func(t *testing.T) {
		post(t, "opentelemetry metrics")
		evs := prod.events(t)
		if len(evs) != 2 {
			t.Fatalf("%d events, want 2 (one per model; the durations are skipped)", len(evs))
		}
		for _, e := range evs {
			if !strings.HasPrefix(e.EventID, otlp.MetricEventIDPrefix) || e.Usage == nil || schemas.Get(e.Usage.InputTokens) == 0 ||
				e.Labels["team"] != "support" || e.Labels["otlp_requests"] == "" {
				t.Errorf("token-usage points normalized to %+v", e)
			}
		}
	})

	t.Run("openai-compatible gateway", func(t *testing.T) {
		post(t, "openai-compatible gateway")
		evs := prod.events(t)
		if len(evs) != 1 {
			t.Fatalf("%d events, want 1", len(evs))
		}
		u := evs[0].Usage
		if evs[0].Model != "gpt-4o-2024-08-06" || schemas.Get(u.InputTokens) != 1200 || schemas.Get(u.CacheReadInputTokens) != 1024 || schemas.Get(u.OutputTokens) != 300 {
			t.Errorf("envelope normalized to %+v / %+v", evs[0], *u)
		}
		body, _ := os.ReadFile("../docs/examples/openai-envelope.json")
		if !strings.Contains(string(doc), strings.TrimSpace(string(body))) {
			t.Error("docs/integrations.md does not show docs/examples/openai-envelope.json verbatim")
		}
	})

	t.Run("fixed past times", func(t *testing.T) {
		for name, ex := range examples {
			if time.Since(ex.fixedTime) <= cfg.MaxEventAge {
				continue // still current: nothing to refuse yet
			}
			rec := send(ex.path, read(t, ex))
			if ex.path == ingest.TracesPath || ex.path == ingest.MetricsPath {
				// OTLP answers 200 with the rejected spans or points and why.
				accepted := rec.Header().Get("X-Aivis-Spans-Accepted") + rec.Header().Get("X-Aivis-Events-Accepted")
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "time: ") || accepted != "0" {
					t.Errorf("%s as filed: status %d, accepted %s: %s; want every event rejected for its time",
						name, rec.Code, accepted, rec.Body.String())
				}
				continue
			}
			var resp ingest.Response
			_ = json.Unmarshal(rec.Body.Bytes(), &resp)
			if rec.Code != http.StatusUnprocessableEntity || len(resp.Errors) == 0 || resp.Errors[0].Field != "time" || resp.Errors[0].Code != schemas.CodeOutOfRange {
				t.Errorf("%s as filed: status %d: %s; want 422 naming time", name, rec.Code, rec.Body.String())
			}
		}
		if evs := prod.events(t); len(evs) != 0 {
			t.Errorf("%d events of the examples as filed reached Kafka", len(evs))
		}
	})
}

// TestREADMECurlExample sends the README's /v1/events example as the shell
// would (its heredoc puts the current time in) and requires a 202.
func TestREADMECurlExample(t *testing.T) {
	const token = "aivis_docs_example_token"
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const dateCmd = "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	_, rest, ok := strings.Cut(string(readme), "--data-binary @- <<JSON\n")
	body, _, ok2 := strings.Cut(rest, "\nJSON\n")
	if !ok || !ok2 || !strings.Contains(body, `"time":"`+dateCmd+`"`) {
		t.Fatalf("README.md has no curl example whose unquoted heredoc sends the current time (%s)", dateCmd)
	}
	body = strings.ReplaceAll(body, dateCmd, time.Now().UTC().Format("2006-01-02T15:04:05Z"))
	cfg := ingest.DefaultConfig()
	cfg.Producers = []ingest.ProducerToken{{Name: "docs", TokenSHA256: ingest.HashToken(token)}}
	prod := &captureProducer{}
	srv, err := ingest.New(cfg, prod, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, ingest.Path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted || len(prod.events(t)) != 1 {
		t.Fatalf("README example: status %d: %s", rec.Code, rec.Body.String())
	}
}
