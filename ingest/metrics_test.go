package ingest

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/aivis-dev/aivis/internal/testenv"
)

// Every answer is counted by status and route, refusals included, in the
// registry the server was given.
func TestRequestsCountedByRoute(t *testing.T) {
	_, chatPB := otlpInput(t, "openai_chat")
	tests := []struct {
		name, method, path, body, token, contentType string
		setup                                        func(*Config, *fakeProducer)
		hold                                         bool // another request holds the only slot
		first                                        bool // the same request is accepted once before
		wantCode, wantRoute                          string
	}{
		{name: "accepted", path: Path, body: event("a"), wantCode: "202", wantRoute: "events"},
		{name: "no token", path: Path, body: event("a"), token: "-", wantCode: "401", wantRoute: "events"},
		{name: "wrong method", method: http.MethodGet, path: Path, wantCode: "405", wantRoute: "events"},
		{name: "malformed", path: Path, body: "{", wantCode: "400", wantRoute: "events"},
		{name: "body too large", path: Path, body: strings.Repeat(" ", 17<<10), wantCode: "413", wantRoute: "events"},
		{name: "invalid", path: Path, body: event(""), wantCode: "422", wantRoute: "events"},
		{name: "over the burst", path: Path, body: events("a", "b"), setup: func(c *Config, _ *fakeProducer) {
			c.Producers[0].RateEventsPerSecond = 1
			c.Producers[0].BurstEvents = 1
		}, wantCode: "413", wantRoute: "events"},
		{name: "over the quota", path: Path, body: event("a"), first: true, setup: func(c *Config, _ *fakeProducer) { c.Producers[0].MaxEventsPerDay = 1 },
			wantCode: "429", wantRoute: "events"},
		{name: "traces over the quota", path: TracesPath, body: string(chatPB), contentType: "application/x-protobuf", first: true,
			setup: func(c *Config, _ *fakeProducer) { c.Producers[0].MaxEventsPerDay = 1 }, wantCode: "429", wantRoute: "traces"},
		{name: "overloaded", path: Path, body: event("a"), hold: true, setup: func(c *Config, _ *fakeProducer) { c.MaxInflightRequests = 1 },
			wantCode: "503", wantRoute: "events"},
		{name: "kafka down", path: Path, body: event("a"), setup: func(_ *Config, p *fakeProducer) { p.err = kerr.NotEnoughReplicas },
			wantCode: "503", wantRoute: "events"},
		{name: "adapter", path: AdaptersPath + "anthropic", body: envelope("a"), wantCode: "202", wantRoute: "adapter:anthropic"},
		{name: "adapter, no token", path: AdaptersPath + "anthropic", body: envelope("a"), token: "-", wantCode: "401", wantRoute: "adapter:anthropic"},
		{name: "unknown adapter", path: AdaptersPath + "cohere", body: envelope("a"), wantCode: "404", wantRoute: "adapters"},
		{name: "traces", path: TracesPath, body: string(chatPB), contentType: "application/x-protobuf", wantCode: "200", wantRoute: "traces"},
		{name: "traces, no token", path: TracesPath, body: string(chatPB), contentType: "application/x-protobuf", token: "-", wantCode: "401", wantRoute: "traces"},
		{name: "traces, kafka down", path: TracesPath, body: string(chatPB), contentType: "application/x-protobuf",
			setup: func(_ *Config, p *fakeProducer) { p.err = kerr.NotEnoughReplicas }, wantCode: "503", wantRoute: "traces"},
		{name: "nothing here", path: "/v2/events", body: event("a"), wantCode: "404", wantRoute: "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, p, reg := testConfig(), &fakeProducer{}, prometheus.NewPedanticRegistry()
			if tt.setup != nil {
				tt.setup(&cfg, p)
			}
			s, err := New(cfg, p, reg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.hold {
				s.slots <- struct{}{}
				defer func() { <-s.slots }()
			}
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			do := func() int {
				req := httptest.NewRequest(method, tt.path, bytes.NewReader([]byte(tt.body)))
				if tt.token != "-" {
					req.Header.Set("Authorization", "Bearer "+testToken)
				}
				if tt.contentType != "" {
					req.Header.Set("Content-Type", tt.contentType)
				}
				rec := httptest.NewRecorder()
				s.Handler().ServeHTTP(rec, req)
				return rec.Code
			}
			want := map[string]float64{"code=" + tt.wantCode + ",route=" + tt.wantRoute: 1}
			if tt.first {
				if code := do(); code/100 != 2 {
					t.Fatalf("first request: status %d", code)
				}
				accepted := "202"
				if tt.path == TracesPath {
					accepted = "200"
				}
				want["code="+accepted+",route="+tt.wantRoute] = 1
			}
			if got := strconv.Itoa(do()); got != tt.wantCode {
				t.Fatalf("status %s, want %s", got, tt.wantCode)
			}
			counted := testenv.Series(t, reg, "aivis_ingest_requests_total")
			if fmt.Sprint(counted) != fmt.Sprint(want) {
				t.Errorf("aivis_ingest_requests_total: %v, want %v", counted, want)
			}
		})
	}
}

// Servers given one registry share their collectors, so that a process
// that builds its server again keeps exporting the same series.
func TestServersShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	var servers []*Server
	for range 2 {
		s, err := New(testConfig(), &fakeProducer{}, reg, nil)
		if err != nil {
			t.Fatalf("New on a registry that holds the ingest metrics already: %v", err)
		}
		servers = append(servers, s)
	}
	for _, s := range servers {
		if rec, _ := (call{body: event("a"), token: testToken}).do(t, s.Handler()); rec.Code != http.StatusAccepted {
			t.Fatalf("code %d", rec.Code)
		}
	}
	if got := testenv.Series(t, reg, "aivis_ingest_events_total")["result=accepted"]; got != 2 {
		t.Errorf("events accepted by both servers: %v, want 2", got)
	}
}
