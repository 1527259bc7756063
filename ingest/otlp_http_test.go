package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/aivis-dev/aivis/ingest/otlp"
	"github.com/aivis-dev/aivis/schemas"
)

// otlpInput reads a golden OTLP JSON request of package otlp and returns it
// as JSON and as protobuf.
func otlpInput(t *testing.T, name string) (jsonBody, protoBody []byte) {
	t.Helper()
	jsonBody, err := os.ReadFile(filepath.Join("otlp", "testdata", name, "input.json"))
	if err != nil {
		t.Fatal(err)
	}
	td, err := otlp.Decode(jsonBody, otlp.JSON)
	if err != nil {
		t.Fatal(err)
	}
	protoBody, err = proto.Marshal(td)
	if err != nil {
		t.Fatal(err)
	}
	return jsonBody, protoBody
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type traceCall struct {
	method, contentType, encoding, token, apiKey string
	body                                         []byte
}

func (c traceCall) do(t *testing.T, h http.Handler) *httptest.ResponseRecorder {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	if c.token == "" {
		c.token = testToken
	}
	req := httptest.NewRequest(c.method, TracesPath, bytes.NewReader(c.body))
	req.Header.Set("Authorization", "Bearer "+c.token)
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if c.encoding != "" {
		req.Header.Set("Content-Encoding", c.encoding)
	}
	if c.apiKey != "" {
		req.Header.Set(APIKeyHeader, c.apiKey)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// jsonStatus decodes an OTLP JSON body: an ExportTraceServiceResponse or a
// google.rpc.Status.
type jsonStatus struct {
	PartialSuccess *struct {
		RejectedSpans string `json:"rejectedSpans"`
		ErrorMessage  string `json:"errorMessage"`
	} `json:"partialSuccess"`
	Code    int32  `json:"code"`
	Message string `json:"message"`
}

func TestTracesHandler(t *testing.T) {
	mixedJSON, mixedPB := otlpInput(t, "mixed_batch")
	chatJSON, chatPB := otlpInput(t, "openai_chat")
	nonGenAI := []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /","startTimeUnixNano":"1772445600000000000"}]}]}]}`)
	const chatID = "otlp:5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174"
	mixedIDs := []string{"otlp:a3f1c2d4e5b60718293a4b5c6d7e8f90:2222222222222222", "otlp:b4f1c2d4e5b60718293a4b5c6d7e8f91:5555555555555555"}

	tests := []struct {
		name         string
		call         traceCall
		wantCode     int
		wantCT       string
		wantKeys     []string
		wantRejected string // rejectedSpans in a JSON partial success
		wantMsg      string // in errorMessage or message
		wantSkipped  string
	}{
		{name: "json", call: traceCall{contentType: "application/json", body: chatJSON},
			wantCode: 200, wantCT: "application/json", wantKeys: []string{chatID}, wantSkipped: "0"},
		{name: "protobuf", call: traceCall{contentType: "application/x-protobuf", body: chatPB},
			wantCode: 200, wantCT: "application/x-protobuf", wantKeys: []string{chatID}, wantSkipped: "0"},
		{name: "gzip protobuf", call: traceCall{contentType: "application/x-protobuf", encoding: "gzip", body: gzipped(t, chatPB)},
			wantCode: 200, wantCT: "application/x-protobuf", wantKeys: []string{chatID}},
		{name: "gzip json", call: traceCall{contentType: "application/json; charset=utf-8", encoding: "gzip", body: gzipped(t, chatJSON)},
			wantCode: 200, wantCT: "application/json", wantKeys: []string{chatID}},
		{name: "partial success json", call: traceCall{contentType: "application/json", body: mixedJSON},
			wantCode: 200, wantCT: "application/json", wantKeys: mixedIDs, wantRejected: "3",
			wantMsg: "3 spans with GenAI usage were rejected", wantSkipped: "3"},
		{name: "partial success protobuf", call: traceCall{contentType: "application/x-protobuf", body: mixedPB},
			wantCode: 200, wantCT: "application/x-protobuf", wantKeys: mixedIDs, wantMsg: "gen_ai.response.model: is required"},
		{name: "no GenAI spans", call: traceCall{contentType: "application/json", body: nonGenAI},
			wantCode: 200, wantCT: "application/json", wantSkipped: "1"},
		{name: "wrong method", call: traceCall{method: http.MethodGet, contentType: "application/json"},
			wantCode: 405, wantCT: "application/json", wantMsg: "use POST"},
		{name: "unsupported content type", call: traceCall{contentType: "text/plain", body: chatJSON},
			wantCode: 415, wantCT: "application/json", wantMsg: "application/x-protobuf or application/json"},
		{name: "unsupported encoding", call: traceCall{contentType: "application/json", encoding: "br", body: chatJSON},
			wantCode: 415, wantCT: "application/json", wantMsg: "gzip"},
		{name: "bad token", call: traceCall{contentType: "application/json", token: "nope", body: chatJSON},
			wantCode: 401, wantCT: "application/json", wantMsg: "OTEL_EXPORTER_OTLP_HEADERS"},
		{name: "malformed json", call: traceCall{contentType: "application/json", body: []byte(`{"resourceSpans":[`)},
			wantCode: 400, wantCT: "application/json", wantMsg: "decoding the OTLP JSON"},
		{name: "json sent as protobuf", call: traceCall{contentType: "application/x-protobuf", body: chatJSON},
			wantCode: 400, wantCT: "application/x-protobuf"},
		{name: "broken gzip", call: traceCall{contentType: "application/json", encoding: "gzip", body: chatJSON},
			wantCode: 400, wantCT: "application/json", wantMsg: "gzip"},
		{name: "gzip over the body limit", call: traceCall{contentType: "application/json", encoding: "gzip",
			body: gzipped(t, append(append([]byte(`{"resourceSpans":[],"x":"`), bytes.Repeat([]byte("a"), 64<<10)...), `"}`...))},
			wantCode: 413, wantCT: "application/json", wantMsg: "decompressed request body is larger than 16384 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &fakeProducer{}
			rec := tt.call.do(t, newTestServer(t, testConfig(), p).Handler())
			if rec.Code != tt.wantCode {
				t.Fatalf("code = %d, want %d; body %q", rec.Code, tt.wantCode, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != tt.wantCT {
				t.Errorf("Content-Type = %q, want %q", ct, tt.wantCT)
			}
			if tt.wantSkipped != "" {
				if got := rec.Header().Get(spansSkippedHeader); got != tt.wantSkipped {
					t.Errorf("%s = %q, want %q", spansSkippedHeader, got, tt.wantSkipped)
				}
			}
			body := rec.Body.String()
			if tt.wantCT == "application/json" {
				var st jsonStatus
				if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
					t.Fatalf("response is not JSON: %v: %q", err, body)
				}
				rejected := ""
				if st.PartialSuccess != nil {
					rejected = st.PartialSuccess.RejectedSpans
					body = st.PartialSuccess.ErrorMessage
				} else {
					body = st.Message
				}
				if rejected != tt.wantRejected {
					t.Errorf("rejectedSpans = %q, want %q (body %s)", rejected, tt.wantRejected, rec.Body)
				}
			}
			if !strings.Contains(body, tt.wantMsg) {
				t.Errorf("body = %q, want it to contain %q", body, tt.wantMsg)
			}
			if tt.wantCode == 200 && tt.wantMsg == "" && rec.Body.Len() > 2 {
				t.Errorf("a full success has an empty response, got %q", rec.Body)
			}
			var keys []string
			for _, r := range p.records() {
				keys = append(keys, string(r.Key))
				if r.Topic != schemas.TopicRaw {
					t.Errorf("topic = %q", r.Topic)
				}
				ev, err := schemas.Decode(r.Value)
				if err != nil {
					t.Errorf("produced event does not decode: %v", err)
				} else if ev.EventID != string(r.Key) {
					t.Errorf("record key %q, event id %q", r.Key, ev.EventID)
				}
			}
			if !slices.Equal(keys, tt.wantKeys) {
				t.Errorf("produced keys %v, want %v", keys, tt.wantKeys)
			}
		})
	}
}

func TestTracesHandlerAPIKeyHeader(t *testing.T) {
	_, chatPB := otlpInput(t, "openai_chat")
	p := &fakeProducer{}
	rec := traceCall{contentType: "application/x-protobuf", apiKey: "sk-live-123", body: chatPB}.do(t, newTestServer(t, testConfig(), p).Handler())
	if rec.Code != 200 {
		t.Fatalf("code = %d; body %q", rec.Code, rec.Body)
	}
	recs := p.records()
	if len(recs) != 1 {
		t.Fatalf("produced %d records", len(recs))
	}
	if v := string(recs[0].Value); !strings.Contains(v, APIKeyID("sk-live-123")) || strings.Contains(v, "sk-live-123") {
		t.Errorf("event %s: want api_key_id %s and no raw key", v, APIKeyID("sk-live-123"))
	}
}

func TestTracesHandlerProduceFails(t *testing.T) {
	_, chatPB := otlpInput(t, "openai_chat")
	p := &fakeProducer{err: errors.New("broker down")}
	rec := traceCall{contentType: "application/x-protobuf", body: chatPB}.do(t, newTestServer(t, testConfig(), p).Handler())
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("code = %d, want 503; body %q", rec.Code, rec.Body)
	}
	if rec.Header().Get("Retry-After") != "5" {
		t.Errorf("Retry-After = %q, want 5", rec.Header().Get("Retry-After"))
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/x-protobuf" {
		t.Errorf("Content-Type = %q", ct)
	}
	if !bytes.Contains(rec.Body.Bytes(), []byte("Kafka did not acknowledge")) {
		t.Errorf("body = %q, want a google.rpc.Status naming Kafka", rec.Body)
	}
}

func TestTracesHandlerTooManyEvents(t *testing.T) {
	var spans []string
	for i := range 11 {
		spans = append(spans, `{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"`+fmt.Sprintf("%016x", i+1)+`","startTimeUnixNano":"1772445600000000000","attributes":[{"key":"gen_ai.provider.name","value":{"stringValue":"openai"}},{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},{"key":"gen_ai.usage.input_tokens","value":{"intValue":"3"}}]}`)
	}
	body := `{"resourceSpans":[{"scopeSpans":[{"spans":[` + strings.Join(spans, ",") + `]}]}]}`
	p := &fakeProducer{}
	rec := traceCall{contentType: "application/json", body: []byte(body)}.do(t, newTestServer(t, testConfig(), p).Handler())
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("code = %d, want 413; body %q", rec.Code, rec.Body)
	}
	if !strings.Contains(rec.Body.String(), "OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
		t.Errorf("body = %q, want advice on the exporter batch size", rec.Body)
	}
	if len(p.records()) != 0 {
		t.Errorf("produced %d records, want none", len(p.records()))
	}
}
