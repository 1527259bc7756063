package ingest

import (
	"strings"
	"testing"

	"github.com/aivis-dev/aivis/schemas"
)

// TestHandlerRejectsNumbersOutOfRange sends one event past each per-event
// bound (schemas.MaxTokens, MaxLatencyMs, MaxProviderCostUSD, the
// ClickHouse DateTime range) between valid ones: the request is answered
// 422 with an out_of_range problem at each index and nothing is produced.
func TestHandlerRejectsNumbersOutOfRange(t *testing.T) {
	body := strings.Join([]string{
		event("ok-1", `"latency_ms":604800000`, `"provider_cost_usd":"1000000"`),
		event("slow", `"latency_ms":604800001`),
		strings.Replace(event("huge"), `"output_tokens":20`, `"output_tokens":68719476737`, 1),
		event("dear", `"provider_cost_usd":"9300000"`),
		strings.Replace(event("far"), "2026-01-02T15:04:05Z", "2200-12-31T00:00:00Z", 1),
		strings.Replace(event("old"), "2026-01-02T15:04:05Z", "1969-12-31T23:59:59Z", 1),
		event("ok-2"),
	}, "\n")
	p := &fakeProducer{}
	h := newTestServer(t, testConfig(), p).Handler()
	rec, resp := call{body: body, token: testToken}.do(t, h)
	if rec.Code != 422 {
		t.Fatalf("code = %d, want 422; body %s", rec.Code, rec.Body)
	}
	want := []EventError{
		{Index: 1, Field: "latency_ms", Code: schemas.CodeOutOfRange},
		{Index: 2, Field: "usage.output_tokens", Code: schemas.CodeOutOfRange},
		{Index: 3, Field: "provider_cost_usd", Code: schemas.CodeOutOfRange},
		{Index: 4, Field: "time", Code: schemas.CodeOutOfRange},
		{Index: 5, Field: "time", Code: schemas.CodeOutOfRange},
	}
	if len(resp.Errors) != len(want) {
		t.Fatalf("errors = %+v, want %+v", resp.Errors, want)
	}
	for i, w := range want {
		if g := resp.Errors[i]; g.Index != w.Index || g.Field != w.Field || g.Code != w.Code {
			t.Errorf("errors[%d] = %+v, want %+v", i, g, w)
		}
	}
	if resp.Accepted != 0 || len(p.records()) != 0 {
		t.Errorf("accepted %d, produced %d records; want nothing", resp.Accepted, len(p.records()))
	}
}
