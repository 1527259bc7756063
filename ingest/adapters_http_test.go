package ingest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/ingest/adapters"
	"github.com/aivis-dev/aivis/schemas"
)

// envelope returns an Anthropic adapter envelope with id and extra members.
func envelope(id string, extra ...string) string {
	s := `{"event_id":"` + id + `","time":"2026-03-02T10:15:30Z","source":"gw-eu","response":{"model":"claude-sonnet-4-5","usage":{"input_tokens":10,"cache_read_input_tokens":90,"output_tokens":5}}`
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

func postAdapter(t *testing.T, h http.Handler, method, name, body, contentType string) (*httptest.ResponseRecorder, Response) {
	t.Helper()
	req := httptest.NewRequest(method, AdaptersPath+name, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var resp Response
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("response is not JSON: %v: %q", err, rec.Body.String())
	}
	return rec, resp
}

func TestAdapterHandler(t *testing.T) {
	tests := []struct {
		name, adapter, method, body, contentType string
		wantCode                                 int
		wantKeys                                 []string
		wantErrors                               []EventError
		wantMsg                                  string
	}{
		{name: "single", adapter: "anthropic", body: envelope("a"), wantCode: 202, wantKeys: []string{"a"}},
		{name: "array", adapter: "anthropic", body: "[" + envelope("a") + "," + envelope("b") + "]", wantCode: 202, wantKeys: []string{"a", "b"}},
		{name: "ndjson", adapter: "anthropic", body: envelope("a") + "\n" + envelope("b") + "\n", contentType: "application/x-ndjson", wantCode: 202, wantKeys: []string{"a", "b"}},
		{name: "unknown adapter", adapter: "cohere", body: envelope("a"), wantCode: 404, wantMsg: "anthropic, bedrock, gemini, litellm, openai"},
		{name: "wrong method", adapter: "anthropic", method: http.MethodGet, wantCode: 405},
		{name: "malformed", adapter: "anthropic", body: "[" + envelope("a") + ",\n{oops}]", wantCode: 400, wantMsg: "line 2, column 2"},
		{name: "per-index errors, nothing produced", adapter: "anthropic",
			body: "[" + envelope("a") + "," + envelope("b", `"tokens":1`) + "," +
				`{"event_id":"c","time":"2026-03-02T10:15:30Z","source":"gw","response":{"model":"m","usage":{"input_tokens":-4}}}` + "," +
				envelope("") + ",7]",
			wantCode: 422, wantMsg: "4 of 5 events are invalid",
			wantErrors: []EventError{
				{Index: 1, Field: "", Message: "unknown field \"tokens\""},
				{Index: 2, Field: "response.usage.input_tokens", Message: "between 0 and"},
				{Index: 3, Field: "event_id", Message: "is required"},
				{Index: 4, Field: "", Message: "must be a JSON object"},
			}},
		{name: "bedrock needs request_model", adapter: "bedrock",
			body:     `{"event_id":"x","time":"2026-03-02T10:15:30Z","source":"gw","response":{"usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}}`,
			wantCode: 422, wantErrors: []EventError{{Index: 0, Field: "request_model", Message: "is required"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &fakeProducer{}
			h := newTestServer(t, testConfig(), p).Handler()
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			rec, resp := postAdapter(t, h, method, tt.adapter, tt.body, tt.contentType)
			if rec.Code != tt.wantCode {
				t.Fatalf("code = %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			if !strings.Contains(resp.Error, tt.wantMsg) {
				t.Errorf("error = %q, want it to contain %q", resp.Error, tt.wantMsg)
			}
			if len(resp.Errors) < len(tt.wantErrors) {
				t.Fatalf("errors = %+v, want %+v", resp.Errors, tt.wantErrors)
			}
			for i, w := range tt.wantErrors {
				g := resp.Errors[i]
				if g.Index != w.Index || g.Field != w.Field || !strings.Contains(g.Message, w.Message) {
					t.Errorf("errors[%d] = %+v, want %+v", i, g, w)
				}
			}
			var keys []string
			for _, r := range p.records() {
				keys = append(keys, string(r.Key))
			}
			if strings.Join(keys, ",") != strings.Join(tt.wantKeys, ",") {
				t.Errorf("produced keys %v, want %v", keys, tt.wantKeys)
			}
		})
	}
}

// TestAdapterHandlerNormalizes checks that what is produced is the
// normalized event, with the raw API key replaced like on /v1/events.
func TestAdapterHandlerNormalizes(t *testing.T) {
	p := &fakeProducer{}
	h := newTestServer(t, testConfig(), p).Handler()
	rec, _ := postAdapter(t, h, http.MethodPost, "anthropic", envelope("a", `"labels":{"api_key":"sk-ant-live-1"}`), "")
	if rec.Code != http.StatusAccepted {
		t.Fatalf("code = %d; body %s", rec.Code, rec.Body)
	}
	recs := p.records()
	if len(recs) != 1 {
		t.Fatalf("produced %d records, want 1", len(recs))
	}
	if strings.Contains(string(recs[0].Value), "sk-ant-live-1") {
		t.Fatalf("raw API key produced: %s", recs[0].Value)
	}
	e, err := schemas.Decode(recs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if e.APIKeyID != APIKeyID("sk-ant-live-1") || e.Provider != "anthropic" || schemas.Get(e.Usage.InputTokens) != 100 ||
		schemas.Get(e.Usage.CacheReadInputTokens) != 90 || len(e.RawUsage) == 0 {
		t.Errorf("produced event %s, want api_key_id hashed, provider anthropic, input 100 incl. 90 cached, raw_usage kept", recs[0].Value)
	}
}

// Problems carry the code that the adapter or the decoder gave them.
func TestAdapterHandlerCodes(t *testing.T) {
	body := "[" + envelope("a", `"tokens":1`) + "," + envelope("b", `"latency_ms":"slow"`) + "," +
		`{"event_id":"c","time":"2026-03-02T10:15:30Z","source":"gw","response":{"model":"m","usage":{"input_tokens":-4}}}` + "," +
		envelope("") + "," + envelope("e", `"time":"yesterday"`) + ",7]"
	_, resp := postAdapter(t, newTestServer(t, testConfig(), &fakeProducer{}).Handler(), http.MethodPost, "anthropic", body, "")
	want := []string{"unknown_field", "invalid_type", "out_of_range", "required", "invalid_value", "invalid_type"}
	var got []string
	for _, e := range resp.Errors {
		got = append(got, e.Code)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("codes %v, want %v; errors %+v", got, want, resp.Errors)
	}
}

var problemCodes = map[string]bool{
	schemas.CodeRequired: true, schemas.CodeUnknownField: true, schemas.CodeInvalidType: true,
	schemas.CodeOutOfRange: true, schemas.CodeTooLarge: true, schemas.CodeInvalidValue: true,
	schemas.CodeDuplicateKey: true, schemas.CodeInvalidUTF8: true,
}

// FuzzAdapterBody checks what the adapter route makes of any body: every
// envelope accounted for, every problem coded, and every event it would
// produce as valid and canonical as one posted to /v1/events.
func FuzzAdapterBody(f *testing.F) {
	for _, s := range []string{
		envelope("a"),
		"[" + envelope("a") + "," + envelope("b", `"labels":{"api_key":"k"}`) + "]",
		envelope("a", `"tokens":1`) + "\n" + envelope("b", `"latency_ms":"x"`),
		`{"event_id":"c","time":"2026-03-02T10:15:30Z","source":"gw","response":{"model":"m","usage":{"input_tokens":-4}}}`,
		`[{"call_type":"acompletion","model":"gpt-4o","custom_llm_provider":"openai","response_cost":0.1,"prompt_tokens":3,"completion_tokens":1}]`,
		"[7, null]",
	} {
		for i := range adapters.Names() {
			f.Add([]byte(s), uint8(i), "")
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, which uint8, headerKey string) {
		names := adapters.Names()
		a, _ := adapters.Lookup(names[int(which)%len(names)])
		lim := limits{maxEvents: 100, maxEventBytes: 64 << 10, maxEventAge: fixtureAge, maxClockSkew: fixtureAge}
		req := &adapterRequest{jsonRequest: jsonRequest{s: &Server{lim: lim}}, adapter: a}
		items, ref := req.parse(body)
		if ref != nil {
			if ref.status < 400 || ref.code == "" || ref.msg == "" {
				t.Fatalf("refusal without a status, code and message: %+v", ref)
			}
			return
		}
		b := check(items, lim, headerKey, time.Now(), new(sendBuf))
		if b.total == 0 || b.total > lim.maxEvents || len(b.events)+b.invalid != b.total {
			t.Fatalf("counts: total=%d valid=%d invalid=%d", b.total, len(b.events), b.invalid)
		}
		if b.invalid > 0 && len(b.errors) == 0 {
			t.Fatal("invalid envelopes without errors")
		}
		for _, e := range b.errors {
			if !problemCodes[e.Code] || e.Message == "" {
				t.Fatalf("error %+v has no known code or no message", e)
			}
		}
		for _, d := range b.events {
			e, err := schemas.Decode(d.value)
			if err != nil {
				t.Fatalf("accepted event does not decode and validate: %v\n%s", err, d.value)
			}
			if again, _ := json.Marshal(e); !bytes.Equal(again, d.value) {
				t.Fatalf("value is not canonical:\n%s\n%s", d.value, again)
			}
			if _, ok := e.Labels[apiKeyLabel]; ok {
				t.Fatalf("raw api key label survived: %s", d.value)
			}
		}
	})
}
