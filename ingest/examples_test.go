package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/ingest"
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
		p.recs = append(p.recs, r)
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

// TestDocumentedExamples posts every example of docs/integrations.md to a
// real ingest handler and checks what reaches Kafka, so the documentation
// cannot drift from what aivis accepts.
func TestDocumentedExamples(t *testing.T) {
	const token = "aivis_docs_example_token"
	cfg := ingest.DefaultConfig()
	cfg.Producers = []ingest.ProducerToken{{Name: "docs", TokenSHA256: ingest.HashToken(token)}}
	prod := &captureProducer{}
	srv, err := ingest.New(cfg, prod, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	post := func(path, file, contentType string) {
		t.Helper()
		body, err := os.ReadFile("../docs/examples/" + file)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			t.Fatalf("POST %s with %s: status %d: %s", path, file, rec.Code, rec.Body.String())
		}
	}
	doc, err := os.ReadFile("../docs/integrations.md")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("litellm", func(t *testing.T) {
		post("/v1/adapters/litellm", "litellm-callback.json", "application/json")
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
		post("/v1/traces", "otlp-genai-trace.json", "application/json")
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

	t.Run("openai-compatible gateway", func(t *testing.T) {
		post("/v1/adapters/openai", "openai-envelope.json", "application/json")
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
}
