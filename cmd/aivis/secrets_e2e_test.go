package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/ingest"
	"github.com/aivis-dev/aivis/internal/bus"
)

// syncBuffer is a buffer that the pipeline's goroutines log into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEndToEndNoRawSecrets sends raw API keys and other credentials in
// every place a producer can put one — the api_key label, api_key_id, the
// API key header, credential-named labels, raw_usage, LiteLLM's api_key and
// key hash, an adapter envelope, the provider response, OTLP attributes —
// through the whole pipeline, and then looks for them in every record of
// every aivis topic, every row of usage_events and every log line.
func TestEndToEndNoRawSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs ClickHouse")
	}
	cfg, token := testConfig(t, nil, 2)
	cfg.Aggregate.IdleTimeout = 3 * time.Second
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, ctx := startPipeline(t, cfg, token, log)

	secret := func(where string) string { return "sk-raw-" + where + "-0123456789abcdef" }
	var secrets []string
	s := func(where string) string {
		v := secret(where)
		secrets = append(secrets, v)
		return v
	}
	at := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Second).Format(time.RFC3339)
	base := strings.TrimSuffix(p.IngestURL, ingest.Path)
	post := func(path, contentType, body string, header map[string]string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+p.Token)
		req.Header.Set("Content-Type", contentType)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 || bytes.Contains(msg, []byte("rejected")) && path != ingest.TracesPath {
			t.Fatalf("POST %s: status %d: %s", path, resp.StatusCode, msg)
		}
	}

	event := func(id, extra string) string {
		return `{"schema_version":"1","event_id":"` + id + `","time":"` + at + `","kind":"llm.request","source":"gw","provider":"openai","model":"model-a","usage":{"input_tokens":10,"output_tokens":2}` + extra + `}`
	}
	post(ingest.Path, "application/x-ndjson", strings.Join([]string{
		event("sec-label", `,"labels":{"api_key":"`+s("label")+`","team":"t"}`),
		event("sec-id", `,"api_key_id":"`+s("api-key-id")+`"`),
		event("sec-header", ``),
		event("sec-cred-labels", `,"labels":{"X-Api-Key":"`+s("x-api-key")+`","Authorization":"Bearer `+s("authorization")+`","db_password":"`+s("password")+`","githubToken":"`+s("token")+`"}`),
		event("sec-raw", `,"raw_usage":{"input_tokens":10,"api_key":"`+s("raw-usage")+`","nested":{"auth":"`+s("raw-nested")+`","n":1},"list":["`+s("raw-list")+`"]}`),
	}, "\n"), map[string]string{ingest.APIKeyHeader: s("header")})

	post(ingest.AdaptersPath+"litellm", "application/json",
		`{"id":"sec-litellm","call_type":"acompletion","model":"model-a","custom_llm_provider":"openai","startTime":`+fmt.Sprint(time.Now().Add(-10*time.Minute).Unix())+
			`,"api_key":"`+s("litellm-api-key")+`","prompt_tokens":10,"completion_tokens":2,"usage":{"prompt_tokens":10,"completion_tokens":2,"api_key":"`+s("litellm-usage")+`"}}`, nil)
	post(ingest.AdaptersPath+"litellm", "application/json",
		`{"id":"sec-litellm-md","call_type":"acompletion","model":"model-a","custom_llm_provider":"openai","startTime":`+fmt.Sprint(time.Now().Add(-10*time.Minute).Unix())+
			`,"prompt_tokens":10,"completion_tokens":2,"metadata":{"user_api_key_hash":"`+s("litellm-key-hash")+`"}}`, nil)
	post(ingest.AdaptersPath+"openai", "application/json",
		`{"event_id":"sec-openai","time":"`+at+`","source":"gw","api_key_id":"`+s("envelope-id")+`","labels":{"secret":"`+s("envelope-label")+`","Api-Key":"`+s("envelope-api-key")+`"},`+
			`"response":{"model":"model-a","user":"`+s("response-user")+`","usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12,"api_key":"`+s("response-usage")+`"}}}`, nil)
	post(ingest.TracesPath, "application/json", `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}},{"key":"http.request.header.authorization","value":{"stringValue":"Bearer `+s("otlp-resource")+`"}}]},
"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60d","spanId":"eee19b7ec3c1b175","name":"chat","startTimeUnixNano":"`+fmt.Sprint(time.Now().Add(-10*time.Minute).UnixNano())+`",
"attributes":[{"key":"gen_ai.provider.name","value":{"stringValue":"openai"}},{"key":"gen_ai.request.model","value":{"stringValue":"model-a"}},
{"key":"gen_ai.usage.input_tokens","value":{"intValue":"10"}},{"key":"gen_ai.usage.output_tokens","value":{"intValue":"2"}},
{"key":"gen_ai.usage.api_key","value":{"stringValue":"`+s("otlp-usage")+`"}},{"key":"http.request.header.x-api-key","value":{"stringValue":"`+s("otlp-header")+`"}}]}]}]}]}`, nil)

	if err := p.Drain(2 * time.Minute); err != nil {
		t.Fatal(err)
	}

	found := func(where, text string) {
		t.Helper()
		for _, k := range secrets {
			if strings.Contains(text, k) {
				t.Errorf("raw secret %q found in %s: %.300s", k, where, text)
			}
		}
	}

	// Every record of every aivis topic: key, value and headers.
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Brokers...), kgo.ConsumeTopics(bus.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	records := 0
	// Until two polls in a row find nothing, once records came: the first
	// fetch can take seconds on a loaded machine.
	for idle, deadline := 0, time.Now().Add(time.Minute); idle < 2 && time.Now().Before(deadline); {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			text := string(r.Key) + string(r.Value)
			for _, h := range r.Headers {
				text += h.Key + string(h.Value)
			}
			found(fmt.Sprintf("record %s[%d]@%d", r.Topic, r.Partition, r.Offset), text)
		})
		records += n
		if n == 0 && records > 0 {
			idle++
		}
	}
	if records < 10 {
		t.Errorf("read %d records, want at least the 10 raw events", records)
	}

	// Every row of usage_events, every column, as text.
	crows, err := p.Store.Query(ctx, "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'usage_events'")
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for crows.Next() {
		var c string
		if err := crows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, "toString(`"+c+"`)")
	}
	crows.Close()
	if len(cols) < 10 {
		t.Fatalf("usage_events has columns %v", cols)
	}
	rows, err := p.Store.Query(ctx, "SELECT event_id, concat("+strings.Join(cols, ", '\\t', ")+") FROM usage_events")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for rows.Next() {
		var id, row string
		if err := rows.Scan(&id, &row); err != nil {
			t.Fatal(err)
		}
		stored[id] = true
		found("usage_events row "+id, row)
	}
	rows.Close()
	for _, id := range []string{"sec-label", "sec-id", "sec-header", "sec-cred-labels", "sec-raw", "sec-litellm", "sec-litellm-md", "sec-openai", "otlp:5b8efff798038103d269b633813fc60d:eee19b7ec3c1b175"} {
		if !stored[id] {
			t.Errorf("event %s is not in usage_events", id)
		}
	}
	if !strings.Contains(logs.String(), "level") {
		t.Error("nothing was logged")
	}
	found("the logs", logs.String())
}
