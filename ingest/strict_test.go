package ingest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/aivis-dev/aivis/schemas"
)

// TestStrictJSONEvents: what encoding/json would take silently — a key
// sent twice, a key in another case, text that is not UTF-8 — is a field
// error naming the JSON path, and nothing is produced.
func TestStrictJSONEvents(t *testing.T) {
	for _, c := range []struct {
		name, body, field, code string
	}{
		{"duplicate key", event("e1", `"model":"gpt-4o-mini"`), "model", schemas.CodeDuplicateKey},
		{"duplicate usage count", event("e1", `"usage":{"input_tokens":1}`), "usage", schemas.CodeDuplicateKey},
		{"duplicate label", event("e1", `"labels":{"team":"a","team":"b"}`), "labels.team", schemas.CodeDuplicateKey},
		{"case variant", event("e1", `"MODEL":"gpt-4o-mini"`), "MODEL", schemas.CodeDuplicateKey},
		{"case variant nested", event("e1", `"gpu":{"gpu_model":"H100","GPU_Model":"A100"}`), "gpu.GPU_Model", schemas.CodeDuplicateKey},
		{"invalid UTF-8", event("e1", "\"labels\":{\"team\":\"se\xe9rch\"}"), "labels.team", schemas.CodeInvalidUTF8},
		{"lone surrogate", event("e1", `"labels":{"team":"\udead"}`), "labels.team", schemas.CodeInvalidUTF8},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &fakeProducer{}
			h := newTestServer(t, testConfig(), p).Handler()
			rec, resp := call{body: c.body, token: testToken}.do(t, h)
			if rec.Code != http.StatusUnprocessableEntity {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if len(resp.Errors) == 0 || resp.Errors[0].Field != c.field || resp.Errors[0].Code != c.code {
				t.Errorf("errors = %+v, want %s %s", resp.Errors, c.field, c.code)
			}
			if n := len(p.records()); n != 0 {
				t.Errorf("%d records produced", n)
			}
		})
	}
	// The same event without the repeat is accepted unchanged.
	p := &fakeProducer{}
	h := newTestServer(t, testConfig(), p).Handler()
	if rec, _ := (call{body: event("e1", `"labels":{"Team":"a","team":"b"}`), token: testToken}).do(t, h); rec.Code != http.StatusAccepted {
		t.Fatalf("labels that differ in case: status %d: %s", rec.Code, rec.Body)
	}
	if v := string(p.records()[0].Value); !strings.Contains(v, `"labels":{"Team":"a","team":"b"}`) {
		t.Errorf("produced %s", v)
	}
}

func TestStrictJSONAdapters(t *testing.T) {
	for _, c := range []struct {
		name, body, field, code string
	}{
		{"envelope duplicate", envelope("a1", `"source":"other"`), "source", schemas.CodeDuplicateKey},
		{"envelope case variant", envelope("a1", `"Source":"x"`), "Source", schemas.CodeDuplicateKey},
		{"response duplicate", `{"event_id":"a1","time":"2026-03-02T10:15:30Z","source":"gw","response":{"model":"claude-sonnet-4-5","usage":{"input_tokens":10,"output_tokens":5,"output_tokens":5000}}}`,
			"response.usage.output_tokens", schemas.CodeDuplicateKey},
		{"response case variant", `{"event_id":"a1","time":"2026-03-02T10:15:30Z","source":"gw","response":{"model":"claude-sonnet-4-5","usage":{"input_tokens":10,"output_tokens":5,"Output_Tokens":5000}}}`,
			"response.usage.Output_Tokens", schemas.CodeDuplicateKey},
		{"response usage in another case", `{"event_id":"a1","time":"2026-03-02T10:15:30Z","source":"gw","response":{"model":"claude-sonnet-4-5","usage":{"input_tokens":10,"output_tokens":5},"Usage":{"input_tokens":10,"output_tokens":5000}}}`,
			"response.Usage", schemas.CodeDuplicateKey},
		{"invalid UTF-8", envelope("a1", "\"labels\":{\"team\":\"\xff\"}"), "labels.team", schemas.CodeInvalidUTF8},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &fakeProducer{}
			h := newTestServer(t, testConfig(), p).Handler()
			rec, resp := postAdapter(t, h, http.MethodPost, "anthropic", c.body, "")
			if rec.Code != http.StatusUnprocessableEntity {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if len(resp.Errors) == 0 || resp.Errors[0].Field != c.field || resp.Errors[0].Code != c.code {
				t.Errorf("errors = %+v, want %s %s", resp.Errors, c.field, c.code)
			}
		})
	}
	// LiteLLM's own payload, posted without an envelope, is checked too.
	h := newTestServer(t, testConfig(), &fakeProducer{}).Handler()
	native := `{"id":"l1","call_type":"acompletion","model":"gpt-4o","custom_llm_provider":"openai","startTime":1772445600,"prompt_tokens":10,"completion_tokens":2,"prompt_tokens":1}`
	if rec, resp := postAdapter(t, h, http.MethodPost, "litellm", native, ""); rec.Code != http.StatusUnprocessableEntity ||
		len(resp.Errors) == 0 || resp.Errors[0].Field != "response.prompt_tokens" || resp.Errors[0].Code != schemas.CodeDuplicateKey {
		t.Errorf("native LiteLLM payload: status %d: %s", rec.Code, rec.Body)
	}
}

func TestStrictJSONTraces(t *testing.T) {
	chat, _ := otlpInput(t, "openai_chat")
	for _, c := range []struct {
		name string
		body string
		want string
	}{
		{"duplicate key", strings.Replace(string(chat), `"name": "chat gpt-4o",`, `"name": "chat gpt-4o", "name": "x",`, 1), "resourceSpans[0].scopeSpans[0].spans[0].name: appears more than once"},
		{"case variant", strings.Replace(string(chat), `"name": "chat gpt-4o",`, `"name": "chat gpt-4o", "Name": "x",`, 1), "resourceSpans[0].scopeSpans[0].spans[0].Name: appears more than once"},
		{"invalid UTF-8", strings.Replace(string(chat), `"name": "chat gpt-4o",`, "\"name\": \"chat \xff\",", 1), "resourceSpans[0].scopeSpans[0].spans[0].name: the string is not valid UTF-8"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &fakeProducer{}
			h := newTestServer(t, testConfig(), p).Handler()
			rec := traceCall{contentType: "application/json", body: []byte(c.body)}.do(t, h)
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), c.want) {
				t.Errorf("status %d: %s\nwant %q", rec.Code, rec.Body, c.want)
			}
			if n := len(p.records()); n != 0 {
				t.Errorf("%d records produced", n)
			}
		})
	}
	// An attribute that Convert reads, set twice on a span: which one?
	twice := strings.Replace(string(chat), `"key": "gen_ai.usage.input_tokens",`, `"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1"}}, {"key": "gen_ai.usage.input_tokens",`, 1)
	p := &fakeProducer{}
	h := newTestServer(t, testConfig(), p).Handler()
	rec := traceCall{contentType: "application/json", body: []byte(twice)}.do(t, h)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "gen_ai.usage.input_tokens: is set more than once") || len(p.records()) != 0 {
		t.Errorf("repeated attribute: status %d: %s, %d records", rec.Code, rec.Body, len(p.records()))
	}
}
