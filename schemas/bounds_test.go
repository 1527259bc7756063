package schemas

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func boundsEvent() Event {
	return Event{SchemaVersion: "1", EventID: "b", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Kind: KindLLMRequest,
		Source: "gw", Provider: "anthropic", Model: "claude-opus-4", LatencyMs: Int64(800),
		Usage: &Usage{InputTokens: Int64(10), OutputTokens: Int64(3)}}
}

// TestValidateBounds checks each per-event bound on both sides: the bound
// itself is accepted, one past it is a problem on that field, worded so
// that ingest classifies it as out_of_range.
func TestValidateBounds(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(e *Event)
		field string // "" for a valid event
	}{
		{"input tokens at the bound", func(e *Event) { e.Usage.InputTokens = Int64(MaxTokens) }, ""},
		{"input tokens past the bound", func(e *Event) { e.Usage.InputTokens = Int64(MaxTokens + 1) }, "usage.input_tokens"},
		{"output tokens at the bound", func(e *Event) { e.Usage.OutputTokens = Int64(MaxTokens) }, ""},
		{"output tokens past the bound", func(e *Event) { e.Usage.OutputTokens = Int64(MaxTokens + 1) }, "usage.output_tokens"},
		{"largest int64 output tokens", func(e *Event) { e.Usage.OutputTokens = Int64(1<<63 - 1) }, "usage.output_tokens"},
		{"cache reads past the bound", func(e *Event) {
			e.Usage.InputTokens, e.Usage.CacheReadInputTokens = Int64(MaxTokens), Int64(MaxTokens+1)
		}, "usage.cache_read_input_tokens"},
		{"server tool calls past the bound", func(e *Event) {
			e.Usage.ServerToolCalls = map[string]int64{"web_search": MaxTokens + 1}
		}, "usage.server_tool_calls.web_search"},
		{"latency of 7 days", func(e *Event) { e.LatencyMs = Int64(MaxLatencyMs) }, ""},
		{"latency past 7 days", func(e *Event) { e.LatencyMs = Int64(MaxLatencyMs + 1) }, "latency_ms"},
		{"absurd latency", func(e *Event) { e.LatencyMs = Int64(1<<63 - 1) }, "latency_ms"},
		{"negative latency", func(e *Event) { e.LatencyMs = Int64(-1) }, "latency_ms"},
		{"provider cost at the bound", func(e *Event) { e.ProviderCostUSD = "1000000" }, ""},
		{"provider cost at the bound with zero decimals", func(e *Event) { e.ProviderCostUSD = "001000000.000" }, ""},
		{"provider cost just below the bound", func(e *Event) { e.ProviderCostUSD = "999999.999999999999" }, ""},
		{"provider cost a pico-USD past the bound", func(e *Event) { e.ProviderCostUSD = "1000000.000000000001" }, "provider_cost_usd"},
		{"provider cost of a few million", func(e *Event) { e.ProviderCostUSD = "9300000" }, "provider_cost_usd"},
		{"provider cost beyond int64 pico-USD", func(e *Event) { e.ProviderCostUSD = "99999999999999999999" }, "provider_cost_usd"},
		{"request count of 0 (only unfinished requests)", func(e *Event) { e.RequestCount = Int64(0) }, ""},
		{"request count at the bound", func(e *Event) { e.RequestCount = Int64(MaxRequestCount) }, ""},
		{"request count past the bound", func(e *Event) { e.RequestCount = Int64(MaxRequestCount + 1) }, "request_count"},
		{"negative request count", func(e *Event) { e.RequestCount = Int64(-1) }, "request_count"},
		{"time on 2000-01-01", func(e *Event) { e.Time = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }, ""},
		{"time before 2000", func(e *Event) { e.Time = time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC) }, "time"},
		{"time before 1970", func(e *Event) { e.Time = time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC) }, "time"},
		{"last instant before 2106-02-07", func(e *Event) { e.Time = time.Date(2106, 2, 6, 23, 59, 59, 999_999_999, time.UTC) }, ""},
		{"time on 2106-02-07", func(e *Event) { e.Time = time.Date(2106, 2, 7, 0, 0, 0, 0, time.UTC) }, "time"},
		{"time on 2106-02-07 in another zone", func(e *Event) {
			e.Time = time.Date(2106, 2, 7, 1, 0, 0, 0, time.FixedZone("CET", 3600))
		}, "time"},
		{"time in 2200, once accepted and stored as 2064", func(e *Event) { e.Time = time.Date(2200, 12, 31, 0, 0, 0, 0, time.UTC) }, "time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := boundsEvent()
			tt.edit(&e)
			err := e.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v, want no problem", err)
				}
				return
			}
			ve, ok := err.(*ValidationError)
			if !ok {
				t.Fatalf("Validate = %v, want a problem on %s", err, tt.field)
			}
			var p *FieldError
			for i := range ve.Problems {
				if ve.Problems[i].Field == tt.field {
					p = &ve.Problems[i]
				}
			}
			if p == nil {
				t.Fatalf("problems %+v, want one on %s", ve.Problems, tt.field)
			}
			// ingest's classification: these phrasings are out_of_range.
			if !strings.HasPrefix(p.Message, "must be between") && !strings.Contains(p.Message, "is out of range") {
				t.Errorf("message %q does not read as out of range", p.Message)
			}
		})
	}
}

// TestJSONSchemaStatesTheBounds keeps usage-event.v1.json's maximums and
// provider_cost_usd pattern in step with Validate.
func TestJSONSchemaStatesTheBounds(t *testing.T) {
	b, err := os.ReadFile("usage-event.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Properties map[string]struct {
			Maximum    *float64 `json:"maximum"`
			Pattern    string   `json:"pattern"`
			Properties map[string]struct {
				Type                 string   `json:"type"`
				Maximum              *float64 `json:"maximum"`
				AdditionalProperties struct {
					Maximum *float64 `json:"maximum"`
				} `json:"additionalProperties"`
			} `json:"properties"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if m := s.Properties["latency_ms"].Maximum; m == nil || *m != MaxLatencyMs {
		t.Errorf("latency_ms maximum = %v, want %d", m, MaxLatencyMs)
	}
	if m := s.Properties["request_count"].Maximum; m == nil || *m != MaxRequestCount {
		t.Errorf("request_count maximum = %v, want %d", m, MaxRequestCount)
	}
	for name, p := range s.Properties["usage"].Properties {
		m := p.Maximum
		if p.Type == "object" {
			m = p.AdditionalProperties.Maximum
		}
		if m == nil || *m != MaxTokens {
			t.Errorf("usage.%s maximum = %v, want %d", name, m, int64(MaxTokens))
		}
	}
	pattern := regexp.MustCompile(s.Properties["provider_cost_usd"].Pattern)
	for _, v := range []string{"0", "0.0125", "12", "999999.999999999999", "1000000", "1000000.00", "0001000000", "000999999",
		"1000000.000000000001", "1000001", "9300000", "99999999999999999999", "10000000", "1000000.5"} {
		if got, want := pattern.MatchString(v), decimalString(v) && decimalAtMost(v, MaxProviderCostUSD); got != want {
			t.Errorf("provider_cost_usd %q: schema pattern says %v, Validate says %v", v, got, want)
		}
	}
}

// TestRequestCountOnlyOnRequests: request_count says how many requests an
// llm.request event sums; a GPU interval carrying one is refused, since
// its windows count no requests.
func TestRequestCountOnlyOnRequests(t *testing.T) {
	e := boundsEvent()
	e.RequestCount = Int64(12)
	if err := e.Validate(); err != nil {
		t.Fatalf("llm.request with request_count 12: %v", err)
	}
	if got := e.Requests(); got != 12 {
		t.Errorf("Requests() = %d, want 12", got)
	}
	e.RequestCount = nil
	if got := e.Requests(); got != 1 {
		t.Errorf("Requests() without request_count = %d, want 1", got)
	}
	e.Kind, e.Usage, e.RequestCount = KindGPUUsage, nil, Int64(3)
	e.GPU = &GPUUsage{GPUModel: "H100", IntervalSeconds: 60, AllocatedSeconds: 60}
	ve, ok := e.Validate().(*ValidationError)
	if !ok {
		t.Fatal("a gpu.usage event with request_count validates")
	}
	found := false
	for _, p := range ve.Problems {
		found = found || (p.Field == "request_count" && p.Code == CodeInvalidValue && strings.Contains(p.Message, KindLLMRequest))
	}
	if !found {
		t.Errorf("problems %+v, want an invalid_value on request_count naming %s", ve.Problems, KindLLMRequest)
	}
}
