package ingest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Every error path answers JSON with its stable code and a message, and
// with error repeating message for older clients.
func TestErrorCodes(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		path     string // Path when empty
		body     string
		header   map[string]string // Authorization defaults to testToken
		setup    func(*Config, *fakeProducer)
		wantCode int
		want     string
	}{
		{name: "wrong method", method: http.MethodGet, wantCode: 405, want: codeMethodNotAllowed},
		{name: "no token", header: map[string]string{"Authorization": ""}, body: event("a"), wantCode: 401, want: codeUnauthorized},
		{name: "compressed", header: map[string]string{"Content-Encoding": "gzip"}, body: event("a"), wantCode: 415, want: codeUnsupportedMediaType},
		{name: "bad partial", path: Path + "?partial=maybe", body: event("a"), wantCode: 400, want: codeInvalidParameter},
		{name: "bad partial header", header: map[string]string{PartialHeader: "yes please"}, body: event("a"), wantCode: 400, want: codeInvalidParameter},
		{name: "empty body", wantCode: 400, want: codeInvalidJSON},
		{name: "malformed", body: "{oops}", wantCode: 400, want: codeInvalidJSON},
		{name: "body too large", body: strings.Repeat(" ", 17<<10), wantCode: 413, want: codeBodyTooLarge},
		{name: "too many events", body: strings.Repeat(event("a")+"\n", 11), wantCode: 413, want: codeTooManyEvents},
		{name: "invalid event", body: event("a", `"tokens":5`), wantCode: 422, want: codeInvalidEvent},
		{name: "unknown adapter", path: AdaptersPath + "cohere", body: "{}", wantCode: 404, want: codeUnknownAdapter},
		{name: "unknown path", path: "/v2/events", body: event("a"), wantCode: 404, want: codeNotFound},
		{name: "kafka down", body: event("a"), setup: func(_ *Config, p *fakeProducer) { p.err = kerr.NotEnoughReplicas }, wantCode: 503, want: codeKafkaUnavailable},
		{name: "event too large for the topic", body: event("a"), setup: func(_ *Config, p *fakeProducer) { p.err = kerr.MessageTooLarge }, wantCode: 413, want: codeEventTooLarge},
		{name: "overloaded", body: event("a"), setup: func(c *Config, _ *fakeProducer) { c.MaxInflightRequests = 1 }, wantCode: 503, want: codeOverloaded},
		{name: "over the burst", body: events("a", "b"), setup: func(c *Config, _ *fakeProducer) {
			c.Producers[0].RateEventsPerSecond = 1
			c.Producers[0].BurstEvents = 1
		}, wantCode: 413, want: codeTooManyEvents},
		{name: "quota exceeded", body: event("a"), setup: func(c *Config, _ *fakeProducer) { c.Producers[0].MaxEventsPerDay = 1 }, wantCode: 429, want: codeQuotaExceeded},
		{name: "over the rate", body: event("a"), setup: func(c *Config, _ *fakeProducer) {
			c.Producers[0].RateEventsPerSecond = 0.001
			c.Producers[0].BurstEvents = 1
		}, wantCode: 429, want: codeRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			p := &fakeProducer{}
			if tt.setup != nil {
				tt.setup(&cfg, p)
			}
			s := newTestServer(t, cfg, p)
			h := s.Handler()
			do := func() (*httptest.ResponseRecorder, map[string]any) {
				method, path := tt.method, tt.path
				if method == "" {
					method = http.MethodPost
				}
				if path == "" {
					path = Path
				}
				req := httptest.NewRequest(method, path, strings.NewReader(tt.body))
				req.Header.Set("Authorization", "Bearer "+testToken)
				for k, v := range tt.header {
					if v == "" {
						req.Header.Del(k)
						continue
					}
					req.Header.Set(k, v)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				var body map[string]any
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Header().Get("Content-Type") != "application/json" {
					t.Fatalf("not a JSON answer (%v): %q", err, rec.Body)
				}
				return rec, body
			}
			switch tt.want {
			case codeOverloaded:
				s.slots <- struct{}{} // another request holds the only slot
				defer func() { <-s.slots }()
			case codeQuotaExceeded, codeRateLimited:
				if rec, _ := do(); rec.Code != http.StatusAccepted {
					t.Fatalf("first request: %d %s", rec.Code, rec.Body)
				}
			}
			rec, body := do()
			if rec.Code != tt.wantCode || body["code"] != tt.want {
				t.Fatalf("got %d %v, want %d %s; body %s", rec.Code, body["code"], tt.wantCode, tt.want, rec.Body)
			}
			msg, _ := body["message"].(string)
			if msg == "" || body["error"] != msg {
				t.Errorf("message %q, error %q: want the same non-empty text", msg, body["error"])
			}
			if retry := rec.Header().Get("Retry-After"); (rec.Code == 429 || rec.Code == 503) != (retry != "") {
				t.Errorf("status %d with Retry-After %q", rec.Code, retry)
			}
		})
	}
}

func TestPartialAcceptance(t *testing.T) {
	mixed := "[" + event("a") + "," + event("b", `"status":"weird"`) + "," + event("c") + "," + event("d", `"tokens":1`) + "]"
	bad := event("x", `"tokens":1`) + "\n" + event("")
	tests := []struct {
		name         string
		path         string
		header       string // PartialHeader value
		body         string
		wantCode     int
		wantAccepted int
		wantRejected int
		wantIndexes  []int // indexes in errors, in order
		wantKeys     string
	}{
		{name: "default is all or nothing", body: mixed, wantCode: 422, wantRejected: 4, wantIndexes: []int{1, 3}},
		{name: "partial=false", path: Path + "?partial=false", body: mixed, wantCode: 422, wantRejected: 4, wantIndexes: []int{1, 3}},
		{name: "query", path: Path + "?partial=true", body: mixed, wantCode: 202, wantAccepted: 2, wantRejected: 2, wantIndexes: []int{1, 3}, wantKeys: "a,c"},
		{name: "header", header: "true", body: mixed, wantCode: 202, wantAccepted: 2, wantRejected: 2, wantIndexes: []int{1, 3}, wantKeys: "a,c"},
		{name: "query wins over header", path: Path + "?partial=0", header: "true", body: mixed, wantCode: 422, wantRejected: 4, wantIndexes: []int{1, 3}},
		{name: "all valid", path: Path + "?partial=1", body: events("a", "b"), wantCode: 202, wantAccepted: 2, wantKeys: "a,b"},
		{name: "none valid", path: Path + "?partial=true", body: bad, wantCode: 422, wantRejected: 2, wantIndexes: []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &fakeProducer{}
			h := newTestServer(t, testConfig(), p).Handler()
			path := tt.path
			if path == "" {
				path = Path
			}
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			if tt.header != "" {
				req.Header.Set(PartialHeader, tt.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var resp Response
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tt.wantCode || resp.Accepted != tt.wantAccepted || resp.Rejected != tt.wantRejected {
				t.Fatalf("%d accepted %d rejected %d, want %d %d %d; body %s", rec.Code, resp.Accepted, resp.Rejected,
					tt.wantCode, tt.wantAccepted, tt.wantRejected, rec.Body)
			}
			var idx []int
			for _, e := range resp.Errors {
				idx = append(idx, e.Index)
				if e.Code == "" || e.Message == "" {
					t.Errorf("error without code or message: %+v", e)
				}
			}
			if len(idx) < len(tt.wantIndexes) || (len(tt.wantIndexes) == 0) != (len(idx) == 0) {
				t.Fatalf("error indexes %v, want %v", idx, tt.wantIndexes)
			}
			for i, w := range tt.wantIndexes {
				if idx[i] != w {
					t.Fatalf("error indexes %v, want %v", idx, tt.wantIndexes)
				}
			}
			if tt.wantRejected > 0 && (resp.Code != codeInvalidEvent || resp.Message == "") {
				t.Errorf("code %q message %q, want invalid_event and advice", resp.Code, resp.Message)
			}
			var keys []string
			for _, r := range p.records() {
				keys = append(keys, string(r.Key))
			}
			if got := strings.Join(keys, ","); got != tt.wantKeys {
				t.Errorf("produced %q, want %q", got, tt.wantKeys)
			}
		})
	}
}
