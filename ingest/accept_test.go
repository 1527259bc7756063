package ingest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkAccept measures the whole accept path of each route, from the
// request to the answer, with a producer that acknowledges at once.
func BenchmarkAccept(b *testing.B) {
	const n = 100
	var evs, envs, spans []string
	for i := range n {
		id := fmt.Sprintf("01JH5V6Z8X9Y0A%012d", i)
		evs = append(evs, event(id, `"labels":{"api_key":"sk-secret","team":"search"}`))
		envs = append(envs, envelope(id, `"labels":{"api_key":"sk-secret","team":"search"}`))
		spans = append(spans, `{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"`+fmt.Sprintf("%016x", i+1)+`","startTimeUnixNano":"1772445600000000000","endTimeUnixNano":"1772445601000000000","attributes":[{"key":"gen_ai.provider.name","value":{"stringValue":"openai"}},{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},{"key":"gen_ai.usage.input_tokens","value":{"intValue":"100"}},{"key":"gen_ai.usage.output_tokens","value":{"intValue":"20"}}]}`)
	}
	routes := []struct {
		name, path, contentType, body string
		want                          int
	}{
		{"events", Path, "application/json", "[" + strings.Join(evs, ",") + "]", http.StatusAccepted},
		{"adapter", AdaptersPath + "anthropic", "application/json", "[" + strings.Join(envs, ",") + "]", http.StatusAccepted},
		{"traces", TracesPath, "application/json", `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"gw"}}]},"scopeSpans":[{"spans":[` + strings.Join(spans, ",") + `]}]}]}`, http.StatusOK},
	}
	// The batch size of the ingest target (benchmarks/compare): 500
	// events of NDJSON with labels and raw usage.
	const big = 500
	var lines strings.Builder
	for i := range big {
		lines.WriteString(event(fmt.Sprintf("01JH5V6Z8X9Y0B%012d", i), `"labels":{"team":"search","project":"ranking"}`,
			`"raw_usage":{"prompt_tokens":100,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":0}}`) + "\n")
	}
	routes = append(routes, struct {
		name, path, contentType, body string
		want                          int
	}{"events-ndjson", Path, "application/x-ndjson", lines.String(), http.StatusAccepted})
	ack := producerFunc(func(_ context.Context, rs ...*kgo.Record) kgo.ProduceResults { return failAll(rs, nil) })
	cfg := testConfig()
	cfg.MaxBodyBytes = 1 << 20
	cfg.MaxEventsPerRequest = big
	for _, rt := range routes {
		n := strings.Count(rt.body, `"event_id"`) + strings.Count(rt.body, `"spanId"`)
		b.Run(fmt.Sprintf("route=%s/events=%d", rt.name, n), func(b *testing.B) {
			h := newTestServer(b, cfg, ack).Handler()
			body := []byte(rt.body)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, rt.path, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+testToken)
				req.Header.Set("Content-Type", rt.contentType)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != rt.want {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
