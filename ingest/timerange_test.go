package ingest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivis-dev/aivis/schemas"
)

// rangeServer is a server with the default accept range around a clock
// fixed at now.
func rangeServer(t *testing.T, now time.Time, p Producer) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Producers = []ProducerToken{{Name: "gw-eu", TokenSHA256: HashToken(testToken)}}
	s, err := New(cfg, p, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return now }
	return s
}

func eventAt(id string, at time.Time) string {
	return `{"schema_version":"1","event_id":"` + id + `","time":"` + at.Format(time.RFC3339Nano) +
		`","kind":"llm.request","source":"gw-eu","provider":"openai","model":"gpt-4o","usage":{"input_tokens":100,"output_tokens":20}}`
}

// TestEventTimeRange: an event ingest could accept but the windows could
// not count (far ahead, which would make the current events of its
// partition too late, or older than the windows can still correct) is
// refused at once with a field error naming the range and the clock.
func TestEventTimeRange(t *testing.T) {
	now := time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC)
	def := DefaultConfig()
	tests := []struct {
		name string
		at   time.Time
		ok   bool
		msg  string
	}{
		{"now", now, true, ""},
		{"ahead within the skew", now.Add(def.MaxClockSkew), true, ""},
		{"just past the skew", now.Add(def.MaxClockSkew + time.Second), false, "is 5m1s ahead of the ingest clock"},
		{"two days ahead", now.Add(48 * time.Hour), false, "is 48h0m0s ahead of the ingest clock (2026-03-05T12:00:00Z)"},
		{"as old as allowed", now.Add(-def.MaxEventAge), true, ""},
		{"older than allowed", now.Add(-def.MaxEventAge - time.Second), false, "is 23h0m1s older than the ingest clock"},
		{"three days old", now.Add(-72 * time.Hour), false, "ingest accepts events from 2026-03-04T13:00:00Z to 2026-03-05T12:05:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &fakeProducer{}
			rec, resp := call{body: eventAt("a", tt.at), token: testToken}.do(t, rangeServer(t, now, p).Handler())
			if tt.ok {
				if rec.Code != http.StatusAccepted || len(p.records()) != 1 {
					t.Fatalf("status %d, %d records: %s", rec.Code, len(p.records()), rec.Body)
				}
				return
			}
			if rec.Code != http.StatusUnprocessableEntity || len(p.records()) != 0 {
				t.Fatalf("status %d, %d records, want 422 and none: %s", rec.Code, len(p.records()), rec.Body)
			}
			if len(resp.Errors) != 1 {
				t.Fatalf("errors %+v, want one", resp.Errors)
			}
			e := resp.Errors[0]
			if e.Field != "time" || e.Code != schemas.CodeOutOfRange || !strings.Contains(e.Message, tt.msg) ||
				!strings.Contains(e.Message, "ingest.max_event_age") || !strings.Contains(e.Message, "ingest.max_clock_skew") {
				t.Errorf("error %+v, want field time, code out_of_range, a message with %q and the config keys", e, tt.msg)
			}
		})
	}
}

// TestEventTimeRangePartial: in partial mode the current events are
// produced and the one out of range is listed by its index.
func TestEventTimeRangePartial(t *testing.T) {
	now := time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC)
	p := &fakeProducer{}
	body := eventAt("ahead", now.Add(48*time.Hour)) + "\n" + eventAt("current-1", now) + "\n" + eventAt("current-2", now.Add(-time.Minute))
	req := httptest.NewRequest(http.MethodPost, Path+"?partial=true", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	rangeServer(t, now, p).Handler().ServeHTTP(rec, req)
	var resp Response
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusAccepted || resp.Accepted != 2 || resp.Rejected != 1 || len(resp.Errors) != 1 ||
		resp.Errors[0].Index != 0 || resp.Errors[0].Field != "time" {
		t.Fatalf("status %d %+v, want 202 with 2 accepted and event 0 listed for its time", rec.Code, resp)
	}
	for _, r := range p.records() {
		if string(r.Key) == "ahead" {
			t.Error("the event out of range was produced")
		}
	}
}

// TestEventTimeRangeEveryRoute: the range is part of the one accept path,
// so adapters are held to it too.
func TestEventTimeRangeEveryRoute(t *testing.T) {
	at, _ := time.Parse(time.RFC3339, "2026-03-02T10:15:30Z") // envelope's time
	h := rangeServer(t, at.Add(72*time.Hour), &fakeProducer{}).Handler()
	rec, resp := postAdapter(t, h, http.MethodPost, "anthropic", envelope("a"), "")
	if rec.Code != http.StatusUnprocessableEntity || len(resp.Errors) != 1 || resp.Errors[0].Field != "time" {
		t.Fatalf("adapter: status %d %+v, want 422 naming time", rec.Code, resp)
	}
	h = rangeServer(t, at.Add(time.Minute), &fakeProducer{}).Handler()
	if rec, _ := postAdapter(t, h, http.MethodPost, "anthropic", envelope("a"), ""); rec.Code != http.StatusAccepted {
		t.Fatalf("adapter, current: status %d: %s", rec.Code, rec.Body)
	}
}
