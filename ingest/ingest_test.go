package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

const testToken = "aivis_test-token"

// fakeProducer records what it is given and answers with err for every
// record; block, when set, holds ProduceSync until it is closed or ctx ends.
type fakeProducer struct {
	mu    sync.Mutex
	recs  []*kgo.Record
	err   error
	block chan struct{}
}

func (p *fakeProducer) ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	if p.block != nil {
		select {
		case <-p.block:
		case <-ctx.Done():
			return failAll(rs, ctx.Err())
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return failAll(rs, p.err)
	}
	for _, r := range rs {
		p.recs = append(p.recs, keep(r))
	}
	return failAll(rs, nil)
}

// keep copies r as a Kafka broker stores it: ingest reuses its records,
// keys and values once ProduceSync has returned.
func keep(r *kgo.Record) *kgo.Record {
	c := *r
	c.Key, c.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
	return &c
}

func (p *fakeProducer) records() []*kgo.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*kgo.Record(nil), p.recs...)
}

func failAll(rs []*kgo.Record, err error) kgo.ProduceResults {
	res := make(kgo.ProduceResults, len(rs))
	for i, r := range rs {
		res[i] = kgo.ProduceResult{Record: r, Err: err}
	}
	return res
}

// fixtureAge is the accept range of test servers: their fixtures carry
// fixed times, from 2026 on. TestEventTimeRange tests the range itself.
const fixtureAge = 100 * 365 * 24 * time.Hour

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.MaxEventAge = fixtureAge
	cfg.MaxBodyBytes = 16 << 10
	cfg.MaxEventsPerRequest = 10
	cfg.ProduceTimeout = 2 * time.Second
	cfg.Producers = []ProducerToken{{Name: "gw-eu", TokenSHA256: HashToken(testToken)}}
	return cfg
}

// testRegistry holds the metrics of every test server.
var testRegistry = prometheus.NewRegistry()

func newTestServer(t testing.TB, cfg Config, p Producer) *Server {
	t.Helper()
	s, err := New(cfg, p, testRegistry, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.lim.maxEventAge = fixtureAge
	return s
}

type call struct {
	method, body, contentType, token, apiKey string
}

func (c call) do(t *testing.T, h http.Handler) (*httptest.ResponseRecorder, Response) {
	t.Helper()
	return c.doPath(t, h, Path)
}

func (c call) doPath(t *testing.T, h http.Handler, path string) (*httptest.ResponseRecorder, Response) {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	req := httptest.NewRequest(c.method, path, strings.NewReader(c.body))
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.apiKey != "" {
		req.Header.Set(APIKeyHeader, c.apiKey)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var resp Response
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("response is not JSON: %v: %q", err, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	return rec, resp
}

func TestHandler(t *testing.T) {
	tests := []struct {
		name         string
		call         call
		wantCode     int
		wantAccepted int
		wantRejected int
		wantErrors   []EventError
		wantMsg      string
		wantKeys     []string // event ids produced, in order
	}{
		{name: "single", call: call{body: event("a"), token: testToken}, wantCode: 202, wantAccepted: 1, wantKeys: []string{"a"}},
		{name: "array", call: call{body: "[" + event("a") + "," + event("b") + "]", contentType: "application/json", token: testToken},
			wantCode: 202, wantAccepted: 2, wantKeys: []string{"a", "b"}},
		{name: "ndjson", call: call{body: event("a") + "\n" + event("b") + "\n" + event("c") + "\n", contentType: "application/x-ndjson; charset=utf-8", token: testToken},
			wantCode: 202, wantAccepted: 3, wantKeys: []string{"a", "b", "c"}},
		{name: "empty body", call: call{token: testToken}, wantCode: 400, wantMsg: "empty"},
		{name: "too large", call: call{body: "[" + strings.Repeat(" ", 17<<10) + event("a") + "]", token: testToken}, wantCode: 413, wantMsg: "larger than 16384 bytes"},
		{name: "too many events", call: call{body: strings.Repeat(event("a")+"\n", 11), token: testToken}, wantCode: 413, wantMsg: "more than 10 events"},
		{name: "malformed", call: call{body: "[" + event("a") + ",\n{oops}]", token: testToken}, wantCode: 400, wantMsg: "line 2, column 2"},
		{name: "unknown field", call: call{body: event("a", `"tokens":5`), token: testToken},
			wantCode: 422, wantRejected: 1, wantErrors: []EventError{{Index: 0, Field: "tokens", Message: "unknown field"}}},
		{name: "invalid per index, nothing produced", call: call{body: "[" + event("a") + "," + event("b", `"status":"weird"`) + "," + event("c") + "," + event("") + "]", token: testToken},
			wantCode: 422, wantRejected: 4, wantMsg: "2 of 4 events are invalid",
			wantErrors: []EventError{{Index: 1, Field: "status", Message: `unknown status "weird"`}, {Index: 3, Field: "", Message: ""}}},
		{name: "no token", call: call{body: event("a")}, wantCode: 401, wantMsg: "bearer token"},
		{name: "bad token", call: call{body: event("a"), token: "aivis_wrong"}, wantCode: 401},
		{name: "wrong method", call: call{method: http.MethodGet, token: testToken}, wantCode: 405},
		{name: "api key header hashed", call: call{body: event("a"), token: testToken, apiKey: "sk-live-123"}, wantCode: 202, wantAccepted: 1, wantKeys: []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &fakeProducer{}
			h := newTestServer(t, testConfig(), p).Handler()
			rec, resp := tt.call.do(t, h)
			if rec.Code != tt.wantCode {
				t.Fatalf("code = %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			if resp.Accepted != tt.wantAccepted || resp.Rejected != tt.wantRejected {
				t.Errorf("accepted/rejected = %d/%d, want %d/%d", resp.Accepted, resp.Rejected, tt.wantAccepted, tt.wantRejected)
			}
			if !strings.Contains(resp.Error, tt.wantMsg) {
				t.Errorf("error = %q, want it to contain %q", resp.Error, tt.wantMsg)
			}
			if tt.wantErrors != nil {
				// Index 3 has several problems; compare the first per wanted entry.
				if len(resp.Errors) < len(tt.wantErrors) {
					t.Fatalf("errors = %+v, want at least %+v", resp.Errors, tt.wantErrors)
				}
				for i, w := range tt.wantErrors {
					g := resp.Errors[i]
					if g.Index != w.Index || (w.Field != "" && g.Field != w.Field) || !strings.Contains(g.Message, w.Message) {
						t.Errorf("errors[%d] = %+v, want %+v", i, g, w)
					}
				}
			}
			var keys []string
			for _, r := range p.records() {
				if r.Topic != schemas.TopicRaw {
					t.Errorf("topic = %q", r.Topic)
				}
				if strings.Contains(string(r.Value), "sk-live-123") {
					t.Errorf("raw API key produced: %s", r.Value)
				}
				keys = append(keys, string(r.Key))
			}
			if strings.Join(keys, ",") != strings.Join(tt.wantKeys, ",") {
				t.Errorf("produced keys %v, want %v", keys, tt.wantKeys)
			}
			if tt.call.apiKey != "" {
				e, err := schemas.Decode(p.records()[0].Value)
				if err != nil || e.APIKeyID != APIKeyID(tt.call.apiKey) {
					t.Errorf("api_key_id = %q (%v), want %q", e.APIKeyID, err, APIKeyID(tt.call.apiKey))
				}
			}
		})
	}
}

func TestHandlerAnonymous(t *testing.T) {
	cfg := testConfig()
	cfg.Producers = nil
	cfg.AllowAnonymous = true
	h := newTestServer(t, cfg, &fakeProducer{}).Handler()
	if rec, _ := (call{body: event("a")}).do(t, h); rec.Code != http.StatusAccepted {
		t.Fatalf("code = %d, want 202", rec.Code)
	}
}

func TestHandlerProduceFails(t *testing.T) {
	tests := []struct {
		name     string
		producer *fakeProducer
		wantCode int
	}{
		{"broker error", &fakeProducer{err: kerr.NotEnoughReplicas}, http.StatusServiceUnavailable},
		{"timeout", &fakeProducer{err: kgo.ErrRecordTimeout}, http.StatusServiceUnavailable},
		{"too large for the topic", &fakeProducer{err: kerr.MessageTooLarge}, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestServer(t, testConfig(), tt.producer).Handler()
			rec, resp := call{body: event("a") + "\n" + event("b"), token: testToken}.do(t, h)
			if rec.Code != tt.wantCode {
				t.Fatalf("code = %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			if resp.Accepted != 0 {
				t.Errorf("accepted = %d after a failed produce", resp.Accepted)
			}
			if tt.wantCode == http.StatusServiceUnavailable {
				if rec.Header().Get("Retry-After") != "5" {
					t.Errorf("Retry-After = %q, want 5", rec.Header().Get("Retry-After"))
				}
				if !strings.Contains(resp.Error, "same event ids") {
					t.Errorf("error %q does not tell the client to retry with the same ids", resp.Error)
				}
			}
		})
	}
}

// A producer that never answers still gets the client a 503 soon after
// produce_timeout, and its slot stays taken until it returns.
func TestHandlerProducerHangs(t *testing.T) {
	cfg := testConfig()
	cfg.ProduceTimeout = 50 * time.Millisecond
	cfg.MaxInflightRequests = 1
	p := &fakeProducer{block: make(chan struct{})}
	// Ignore ctx so that ProduceSync outlives the handler.
	hang := producerFunc(func(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults {
		<-p.block
		return failAll(rs, errors.New("closed"))
	})
	s := newTestServer(t, cfg, hang)
	h := s.Handler()
	start := time.Now()
	rec, _ := call{body: event("a"), token: testToken}.do(t, h)
	if rec.Code != http.StatusServiceUnavailable || time.Since(start) > 5*time.Second {
		t.Fatalf("code = %d after %s, want 503 soon after the timeout", rec.Code, time.Since(start))
	}
	rec, resp := call{body: event("b"), token: testToken}.do(t, h)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(resp.Error, "max_inflight_requests") {
		t.Fatalf("second request: %d %q, want 503 for the in-flight limit", rec.Code, resp.Error)
	}
	close(p.block)
	s.producing.Wait()
	if rec, _ := (call{body: event("c"), token: testToken}).do(t, h); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("hang producer should still fail, got %d", rec.Code)
	}
}

// Records are reused between requests, but never while a producer still
// has them: a produce call that outlives its request (timed out, 503) sees
// its own keys and values until it returns, however many requests follow.
func TestRecordsNotReusedWhileProducing(t *testing.T) {
	cfg := testConfig()
	cfg.ProduceTimeout = 50 * time.Millisecond
	release := make(chan struct{})
	var (
		mu   sync.Mutex
		hung []*kgo.Record
	)
	prod := producerFunc(func(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults {
		mu.Lock()
		first := hung == nil
		if first {
			hung = rs
		}
		mu.Unlock()
		if first {
			// Ignore ctx, as a producer waiting for a broker does.
			<-release
		}
		return failAll(rs, nil)
	})
	s := newTestServer(t, cfg, prod)
	h := s.Handler()
	body := event("hung-a") + "\n" + event("hung-b")
	if rec, _ := (call{body: body, token: testToken}).do(t, h); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("code = %d, want 503 while the producer hangs", rec.Code)
	}
	mu.Lock()
	want := make([]*kgo.Record, len(hung))
	for i, r := range hung {
		want[i] = keep(r)
	}
	mu.Unlock()
	for i := range 50 {
		id := fmt.Sprintf("later-%02d", i)
		if rec, _ := (call{body: event(id+"a") + "\n" + event(id+"b"), token: testToken}).do(t, h); rec.Code != http.StatusAccepted {
			t.Fatalf("request %d: code = %d, want 202", i, rec.Code)
		}
	}
	mu.Lock()
	for i, r := range hung {
		if !bytes.Equal(r.Key, want[i].Key) || !bytes.Equal(r.Value, want[i].Value) || r.Topic != schemas.TopicRaw {
			t.Errorf("record %d changed while its producer had it: key %q, want %q", i, r.Key, want[i].Key)
		}
	}
	mu.Unlock()
	if string(want[0].Key) != "hung-a" || string(want[1].Key) != "hung-b" {
		t.Errorf("hung keys %q %q, want hung-a hung-b", want[0].Key, want[1].Key)
	}
	close(release)
	s.producing.Wait()
}

// Events are decoded into memory that earlier requests' events used (their
// labels, usage, raw_usage), and their ids stay in the request's body,
// which a later request reads into: nothing of those may show in a later
// record.
// Each body must give the records that decoding it into new memory gives.
func TestEventMemoryReuse(t *testing.T) {
	cfg := testConfig()
	cfg.MaxEventsPerRequest = 100
	bodies := []string{
		event("r1", `"labels":{"team":"search","api_key":"sk-one","note":"x"}`, `"raw_usage":{"prompt_tokens":3,"details":{"cached_tokens":1}}`, `"latency_ms":12`),
		event("r2", `"labels":{"project":"p"}`) + "\n" + event("r3", `"raw_usage":{"completion_tokens":9}`),
		event("r4"),
		`{"schema_version":"1","event_id":"r5","time":"2026-01-02T15:04:05Z","kind":"llm.request","source":"gw-eu","provider":"openai","model":"gpt-4o","usage":{"input_tokens":7}}`,
		event("r6", `"labels":{"team":"other"}`),
	}
	p := &fakeProducer{}
	s := newTestServer(t, cfg, p)
	for round := range 3 {
		for _, body := range bodies {
			before := len(p.records())
			if rec, _ := (call{body: body, token: testToken}).do(t, s.Handler()); rec.Code != http.StatusAccepted {
				t.Fatalf("code = %d for %s: %s", rec.Code, body, rec.Body)
			}
			got := p.records()[before:]
			want, err := decodeBody([]byte(body), framingDetect, s.lim, "")
			if err != nil || len(got) != len(want.events) {
				t.Fatalf("round %d: %d records, want %d (%v)", round, len(got), len(want.events), err)
			}
			for i := range got {
				if !bytes.Equal(got[i].Value, want.events[i].value) {
					t.Errorf("round %d: after other requests\n%s\nwant\n%s", round, got[i].Value, want.events[i].value)
				}
				// The key is the event id, which decoding leaves in the
				// request's body.
				if !bytes.Equal(got[i].Key, want.events[i].key) {
					t.Errorf("round %d: key %q, want %q", round, got[i].Key, want.events[i].key)
				}
			}
		}
	}
}

type producerFunc func(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults

func (f producerFunc) ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	return f(ctx, rs...)
}

func TestHandlerInflightLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInflightRequests = 2
	p := &fakeProducer{block: make(chan struct{})}
	s := newTestServer(t, cfg, p)
	h := s.Handler()
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for _, id := range []string{"a", "b"} {
		wg.Go(func() {
			rec, _ := call{body: event(id), token: testToken}.do(t, h)
			codes <- rec.Code
		})
	}
	// Wait until both requests hold a slot.
	for len(s.slots) < 2 {
		time.Sleep(time.Millisecond)
	}
	rec, resp := call{body: event("c"), token: testToken}.do(t, h)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(resp.Error, "limit of 2") {
		t.Fatalf("over the limit: %d %q, want 503 with Retry-After", rec.Code, resp.Error)
	}
	close(p.block)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusAccepted {
			t.Errorf("request within the limit got %d", c)
		}
	}
	if len(s.slots) != 0 {
		t.Errorf("%d slots still taken", len(s.slots))
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(DefaultConfig(), &fakeProducer{}, nil, nil); err == nil || !strings.Contains(err.Error(), "ingest.producers") {
		t.Fatalf("New with no producers and allow_anonymous=false: err = %v", err)
	}
	if _, err := New(testConfig(), nil, nil, nil); err == nil {
		t.Fatal("New without a producer succeeded")
	}
}

func TestRunGracefulShutdown(t *testing.T) {
	cfg := testConfig()
	p := &fakeProducer{block: make(chan struct{})}
	s := newTestServer(t, cfg, p)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	// A request in flight when shutdown starts still gets its answer.
	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+Path, strings.NewReader(event("a")))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	for len(s.slots) == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	time.Sleep(20 * time.Millisecond)
	close(p.block)
	if code := <-answered; code != http.StatusAccepted {
		t.Fatalf("in-flight request got %d, want 202", code)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("still accepting connections after shutdown")
	}
	http.DefaultClient.CloseIdleConnections()
}

// Run serves on ingest.listen_addr; Ready says whether it can take
// requests: not before it listens, nor once it shuts down.
func TestRunReady(t *testing.T) {
	cfg := testConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	s := newTestServer(t, cfg, &fakeProducer{})
	if err := s.Ready(); err == nil || !strings.Contains(err.Error(), "not listening") {
		t.Fatalf("Ready before Run = %v, want not listening", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Run(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); s.Ready() != nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not ready 5 s after Run: %v", s.Ready())
		}
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := s.Ready(); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("Ready after shutdown = %v, want shutting down", err)
	}

	cfg.ListenAddr = "127.0.0.1:-1"
	if err := newTestServer(t, cfg, &fakeProducer{}).ListenAndServe(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "ingest.listen_addr") {
		t.Fatalf("ListenAndServe on a bad address = %v, want advice on ingest.listen_addr", err)
	}
}
