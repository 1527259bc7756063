package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// fakeIngest answers like ingest: 400 for a request with any invalid event,
// 503 for the first unavailable requests, 202 otherwise.
type fakeIngest struct {
	mu          sync.Mutex
	unavailable int
	accepted    map[string][]byte // event id -> raw
	rejected    int
	requests    int
	bodies      map[string]int // how often each body was seen, to check retries resend it
}

func (f *fakeIngest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if r.URL.Path != "/v1/events" || r.Method != http.MethodPost {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "Bearer s3cret" {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(r.Body)
	f.bodies[body.String()]++
	if f.unavailable > 0 {
		f.unavailable--
		w.Header().Set("Retry-After", "0")
		http.Error(w, "kafka unavailable", http.StatusServiceUnavailable)
		return
	}
	var evs []*schemas.Event
	var raws [][]byte
	sc := bufio.NewScanner(&body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		ev, err := schemas.Decode(sc.Bytes())
		if err != nil {
			f.rejected++
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		evs = append(evs, ev)
		raws = append(raws, bytes.Clone(sc.Bytes()))
	}
	for i, ev := range evs {
		f.accepted[ev.EventID] = raws[i]
	}
	w.WriteHeader(http.StatusAccepted)
}

func newFakeIngest(t *testing.T, unavailable int) (*fakeIngest, string) {
	f := &fakeIngest{unavailable: unavailable, accepted: map[string][]byte{}, bodies: map[string]int{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func TestHTTPSinkSeparatesMalformedAndRetries(t *testing.T) {
	f, url := newFakeIngest(t, 2)
	cfg := testConfig()
	cfg.MalformedRate = 0.05
	cfg.DuplicateRate = 0.05
	g := NewGenerator(cfg)
	items := make([]Item, 400)
	var wantMalformed int
	wantIDs := map[string]bool{}
	for i := range items {
		items[i] = g.Next()
		if items[i].Malformed {
			wantMalformed++
		} else {
			wantIDs[items[i].Event.EventID] = true
		}
	}
	sink := &HTTPSink{URL: url, Token: "s3cret", MaxEvents: 150, Client: &http.Client{}}
	defer sink.Client.CloseIdleConnections()
	if err := sink.Send(context.Background(), items); err != nil {
		t.Fatalf("Send: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.accepted) != len(wantIDs) {
		t.Errorf("ingest accepted %d distinct events, want %d", len(f.accepted), len(wantIDs))
	}
	for id := range wantIDs {
		if _, ok := f.accepted[id]; !ok {
			t.Errorf("event %s never accepted", id)
		}
	}
	if f.rejected != wantMalformed || sink.Counts().Rejected != int64(wantMalformed) {
		t.Errorf("rejected %d (sink counted %d), want each of the %d malformed items alone",
			f.rejected, sink.Counts().Rejected, wantMalformed)
	}
	if c := sink.Counts(); c.Retries != 2 || c.AcceptedMalformed != 0 {
		t.Errorf("counts %+v, want 2 retries and no accepted malformed items", c)
	}
	// The first body was refused twice and then sent again unchanged.
	var resent int
	for _, n := range f.bodies {
		if n == 3 {
			resent++
		}
	}
	if resent != 1 {
		t.Errorf("%d bodies were sent three times, want exactly the first one", resent)
	}
}

func TestHTTPSinkErrors(t *testing.T) {
	_, url := newFakeIngest(t, 1000)
	items := []Item{NewGenerator(testConfig()).Next()}
	client := &http.Client{}
	defer client.CloseIdleConnections()

	sink := &HTTPSink{URL: url, Token: "s3cret", MaxAttempts: 3, Client: client}
	err := sink.Send(context.Background(), items)
	if err == nil || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("unavailable ingest: got %v, want a give-up error after 3 attempts", err)
	}

	sink = &HTTPSink{URL: url, Token: "wrong", Client: client}
	if err := sink.Send(context.Background(), items); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("bad token: got %v, want an error that mentions the token", err)
	}

	sink = &HTTPSink{URL: "localhost:8080", Client: client}
	if err := sink.Send(context.Background(), items); err == nil {
		t.Error("URL without a scheme: want an error")
	}
}

// countingSink records what Run hands over.
type countingSink struct {
	mu      sync.Mutex
	items   int
	batches int
	fail    bool
}

func (s *countingSink) Send(_ context.Context, items []Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("sink down")
	}
	s.items += len(items)
	s.batches++
	return nil
}

func pacedConfig() Config {
	cfg := DefaultConfig()
	cfg.Rate = 1000
	cfg.Duration = 600 * time.Millisecond
	cfg.DiurnalAmplitude = 0
	cfg.BurstEvery = 0
	return cfg
}

func TestRunPacesToRate(t *testing.T) {
	sink := &countingSink{}
	var progressCalls int
	st, err := Run(context.Background(), pacedConfig(), sink, func(Stats) { progressCalls++ })
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	// 600 expected; Poisson spread is about ±25.
	if st.Sent < 500 || st.Sent > 700 || int(st.Sent) != sink.items {
		t.Errorf("sent %d (sink saw %d), want about 600", st.Sent, sink.items)
	}
	if st.Elapsed < 600*time.Millisecond || st.Elapsed > 2*time.Second {
		t.Errorf("elapsed %s, want just over 600ms", st.Elapsed)
	}
	if sink.batches < 4 || sink.batches > 8 {
		t.Errorf("%d batches, want one per 100ms", sink.batches)
	}
	if progressCalls == 0 {
		t.Error("progress never called")
	}
	if st.Distinct() <= 0 || st.Duplicates+st.Malformed+st.Late+st.OutOfOrder == 0 {
		t.Errorf("stats %+v lack the configured imperfections", st)
	}
}

func TestRunStopsOnContext(t *testing.T) {
	cfg := pacedConfig()
	cfg.Duration = 0
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	st, err := Run(ctx, cfg, &countingSink{}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Sent == 0 || st.Elapsed > time.Second {
		t.Errorf("stats %+v, want some items and a prompt stop", st)
	}
}

func TestRunReportsFailedBatches(t *testing.T) {
	cfg := pacedConfig()
	cfg.Duration = 250 * time.Millisecond
	st, err := Run(context.Background(), cfg, &countingSink{fail: true}, nil)
	if err == nil || !strings.Contains(err.Error(), "sink down") {
		t.Errorf("got %v, want an error carrying the sink's", err)
	}
	if st.Errors == 0 || st.Sent != 0 {
		t.Errorf("stats %+v, want only errors", st)
	}
	if _, err := Run(context.Background(), Config{}, &countingSink{}, nil); err == nil {
		t.Error("zero config: want a validation error")
	}
}

func TestKafkaSink(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, schemas.TopicRaw))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...),
		kgo.ConsumeTopics(schemas.TopicRaw), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	cfg := testConfig()
	cfg.MalformedRate = 0.1
	g := NewGenerator(cfg)
	items := make([]Item, 200)
	for i := range items {
		items[i] = g.Next()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := (&KafkaSink{Client: cl}).Send(ctx, items); err != nil {
		t.Fatalf("Send: %v", err)
	}
	var got int
	for got < len(items) {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consuming: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			if ev, err := schemas.Decode(r.Value); err == nil && string(r.Key) != ev.EventID {
				t.Errorf("record keyed %q carries event %s", r.Key, ev.EventID)
			}
		})
	}
	if err := (&KafkaSink{}).Send(ctx, items); err == nil {
		t.Error("KafkaSink without a client: want an error")
	}
}
