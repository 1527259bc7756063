package serving

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aivis-dev/aivis/schemas"
)

// pages serves its pages in turn, one per request, the last one again.
func pages(t *testing.T, names ...string) *httptest.Server {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		i := min(int(n.Add(1))-1, len(names)-1)
		_, _ = w.Write(readPage(t, names[i]))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestScraperTargetDownKeepsTheOthers(t *testing.T) {
	vllm := pages(t, "vllm-1.prom", "vllm-2.prom")
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // nothing listens there any more
	sglang := pages(t, "sglang-1.prom", "sglang-2.prom")
	targets := []Target{
		{Deployment: "llama", URL: vllm.URL + "/metrics", Kind: VLLM, Host: "node-1", Namespace: "llm", Labels: map[string]string{"team": "search"}},
		{Deployment: "gone", URL: down.URL + "/metrics", Kind: VLLM},
		{Deployment: "sg", URL: sglang.URL + "/metrics", Kind: SGLang},
	}
	reg := prometheus.NewRegistry()
	var got [][]schemas.Event
	emit := func(_ context.Context, evs []schemas.Event) error { got = append(got, evs); return nil }
	s, err := NewScraper(DefaultConfig(), targets, emit, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if evs := s.Round(context.Background(), t0); len(evs) != 0 {
		t.Fatalf("baseline round emitted %+v", evs)
	}
	if err := s.Ready(); err != nil {
		t.Fatalf("two of three targets up: not ready: %v", err)
	}
	evs := s.Round(context.Background(), t0.Add(30*time.Second))
	if len(evs) != 2 {
		t.Fatalf("got %d events, want one per live target: %+v", len(evs), evs)
	}
	e := evs[0]
	if e.Kind != schemas.KindLLMRequest || e.Provider != "self-hosted" || e.Model != "meta-llama/Llama-3.1-8B-Instruct" || e.Operation != Operation ||
		*e.Usage.InputTokens != 750 || *e.Usage.OutputTokens != 925 || !e.Time.Equal(t0) || e.ProviderCostUSD != "0" {
		t.Fatalf("event = %+v", e)
	}
	for k, v := range map[string]string{"deployment": "llama", "host": "node-1", "namespace": "llm", "serving": "vllm", "team": "search"} {
		if e.Labels[k] != v {
			t.Errorf("labels[%s] = %q, want %q", k, e.Labels[k], v)
		}
	}
	if !strings.Contains(string(e.RawUsage), `"requests":5`) {
		t.Errorf("raw_usage = %s", e.RawUsage)
	}
	if err := e.Validate(); err != nil {
		t.Errorf("the event does not validate: %v", err)
	}
	if v := testutil.ToFloat64(s.m.scrapes.WithLabelValues("gone", "error")); v != 2 {
		t.Errorf("errors of the down target = %v, want 2", v)
	}
	if v := testutil.ToFloat64(s.m.up.WithLabelValues("gone", targets[1].URL)); v != 0 {
		t.Errorf("up of the down target = %v", v)
	}
	if v := testutil.ToFloat64(s.m.events); v != 2 {
		t.Errorf("events = %v", v)
	}
}

func TestScraperRetriesWithTheSameIDs(t *testing.T) {
	srv := pages(t, "triton-1.prom", "triton-2.prom")
	targets := []Target{{Deployment: "trt", URL: srv.URL, Kind: Triton}}
	fail := true
	var delivered []schemas.Event
	emit := func(_ context.Context, evs []schemas.Event) error {
		if fail {
			return errors.New("broker down")
		}
		delivered = append(delivered, evs...)
		return nil
	}
	s, err := NewScraper(DefaultConfig(), targets, emit, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.Round(context.Background(), t0)
	if evs := s.Round(context.Background(), t0.Add(time.Minute)); evs != nil {
		t.Fatalf("a failed delivery returned %+v", evs)
	}
	if s.Ready() == nil {
		t.Fatal("ready although delivery failed")
	}
	fail = false
	s.Round(context.Background(), t0.Add(2*time.Minute))
	if len(delivered) != 1 || delivered[0].Model != "tensorrt_llm" || *delivered[0].Usage.InputTokens != 600 {
		t.Fatalf("delivered %+v", delivered)
	}
	if want := EventID(targets[0], "tensorrt_llm", t0.UnixNano()); delivered[0].EventID != want {
		t.Fatalf("event id %s, want %s", delivered[0].EventID, want)
	}
	if s.Ready() != nil {
		t.Fatal(s.Ready())
	}
}

func TestScraperRejectsBadPages(t *testing.T) {
	big := strings.Repeat("# padding\n", 200_000) // 2 MB
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			_, _ = w.Write([]byte(big))
		case "/500":
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			_, _ = w.Write([]byte("up 1\n"))
		}
	}))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.MaxPageMiB = 1
	s, err := NewScraper(cfg, []Target{{Deployment: "x", URL: srv.URL, Kind: VLLM}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/big": "larger than serving.max_page_mib", "/500": "status 500", "/other": "none of the token counters"} {
		_, err := s.scrape(context.Background(), Target{Deployment: "x", URL: srv.URL + path, Kind: VLLM})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to say %q", path, err, want)
		}
	}
}

func TestScraperRunStops(t *testing.T) {
	srv := pages(t, "vllm-1.prom")
	cfg := DefaultConfig()
	cfg.Interval, cfg.Timeout = time.Second, time.Second
	s, err := NewScraper(cfg, []Target{{Deployment: "x", URL: srv.URL, Kind: VLLM}}, func(context.Context, []schemas.Event) error { return nil }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(); err != nil {
		t.Fatalf("after a round: %v", err)
	}
}
