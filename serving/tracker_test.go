package serving

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func readPage(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func i64(v int64) *int64 { return &v }

func fmtCount(p *int64) any {
	if p == nil {
		return "nil"
	}
	return *p
}

// TestTwoScrapesGiveExactDeltas reads each server's two recorded pages and
// checks every delta: multi-series sums (engines, finished reasons), a
// model without traffic left out, a restarted server, Triton's ensemble.
func TestTwoScrapesGiveExactDeltas(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	t1 := t0.Add(30 * time.Second)
	cases := []struct {
		kind  Kind
		model string
		want  []Delta
	}{
		{VLLM, "", []Delta{{Model: "meta-llama/Llama-3.1-8B-Instruct", InputTokens: i64(750), OutputTokens: i64(925), Requests: i64(5)}}},
		{TGI, "mistralai/Mistral-7B-Instruct-v0.3", []Delta{{Model: "mistralai/Mistral-7B-Instruct-v0.3", InputTokens: i64(300), OutputTokens: i64(90), Requests: i64(3), Reset: true}}},
		{SGLang, "", []Delta{{Model: "meta-llama/Llama-3.1-8B-Instruct", InputTokens: i64(2000), OutputTokens: i64(1000), Requests: i64(10)}}},
		{Triton, "", []Delta{{Model: "tensorrt_llm", InputTokens: i64(600), OutputTokens: i64(200), Requests: i64(2)}}},
		{Triton, "llama-3-8b", []Delta{{Model: "llama-3-8b", InputTokens: i64(600), OutputTokens: i64(200), Requests: i64(2)}}},
	}
	for _, c := range cases {
		t.Run(string(c.kind)+"/"+c.model, func(t *testing.T) {
			tr := NewTracker()
			for i, at := range []time.Time{t0, t1} {
				r, err := Parse(c.kind, readPage(t, string(c.kind)+"-"+string(rune('1'+i))+".prom"), c.model)
				if err != nil {
					t.Fatal(err)
				}
				got := tr.Observe("x", at, r)
				if i == 0 {
					if len(got) != 0 {
						t.Fatalf("the first reading is a baseline, got %+v", got)
					}
					continue
				}
				if len(got) != len(c.want) {
					t.Fatalf("got %d deltas %+v, want %d", len(got), got, len(c.want))
				}
				for j, w := range c.want {
					g := got[j]
					if g.Model != w.Model || fmtCount(g.InputTokens) != fmtCount(w.InputTokens) || fmtCount(g.OutputTokens) != fmtCount(w.OutputTokens) ||
						fmtCount(g.Requests) != fmtCount(w.Requests) || g.Reset != w.Reset || !g.Start.Equal(t0) || !g.End.Equal(t1) {
						t.Errorf("delta %d = %s in=%v out=%v req=%v reset=%v [%s,%s), want %s in=%v out=%v req=%v reset=%v",
							j, g.Model, fmtCount(g.InputTokens), fmtCount(g.OutputTokens), fmtCount(g.Requests), g.Reset, g.Start, g.End,
							w.Model, fmtCount(w.InputTokens), fmtCount(w.OutputTokens), fmtCount(w.Requests), w.Reset)
					}
				}
			}
		})
	}
}

func reading(m string, in, out, req *float64) Reading {
	return Reading{m: {InputTokens: in, OutputTokens: out, Requests: req}}
}

func f64(v float64) *float64 { return &v }

func TestTrackerCounters(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(n int) time.Time { return t0.Add(time.Duration(n) * 30 * time.Second) }
	tr := NewTracker()
	tr.Observe("a", at(0), reading("m", f64(100), f64(50), nil))

	// A missing metric is not counted, and stays nil rather than 0.
	d := tr.Observe("a", at(1), reading("m", f64(130), nil, nil))
	if len(d) != 1 || *d[0].InputTokens != 30 || d[0].OutputTokens != nil || d[0].Requests != nil {
		t.Fatalf("missing output: got %+v", d)
	}
	// No traffic: no delta.
	if d := tr.Observe("a", at(2), reading("m", f64(130), nil, nil)); len(d) != 0 {
		t.Fatalf("idle interval: got %+v", d)
	}
	// A reading not after the last is ignored, and does not move the baseline.
	if d := tr.Observe("a", at(2), reading("m", f64(999), nil, nil)); d != nil {
		t.Fatalf("repeated time: got %+v", d)
	}
	// One counter reset, the other not: the reset one's delta is its value.
	d = tr.Observe("a", at(3), Reading{"m": {InputTokens: f64(7), OutputTokens: f64(60)}})
	if len(d) != 1 || *d[0].InputTokens != 7 || *d[0].OutputTokens != 60 || !d[0].Reset {
		t.Fatalf("reset: got %+v", d)
	}
	// A model new since the last reading counts from zero.
	d = tr.Observe("a", at(4), Reading{"m": {InputTokens: f64(7), OutputTokens: f64(60)}, "n": {InputTokens: f64(5)}})
	if len(d) != 1 || d[0].Model != "n" || *d[0].InputTokens != 5 || d[0].Reset {
		t.Fatalf("new model: got %+v", d)
	}
	// Targets are independent; Forget makes the next reading a baseline.
	if d := tr.Observe("b", at(5), reading("m", f64(1e6), nil, nil)); d != nil {
		t.Fatalf("another target's first reading: got %+v", d)
	}
	tr.Forget("a")
	if d := tr.Observe("a", at(6), reading("m", f64(1e6), nil, nil)); d != nil {
		t.Fatalf("after Forget: got %+v", d)
	}
}

func TestParseMissingAndWrong(t *testing.T) {
	r, err := Parse(VLLM, readPage(t, "vllm-no-requests.prom"), "")
	if err != nil {
		t.Fatal(err)
	}
	if c := r["m"]; c.InputTokens == nil || *c.InputTokens != 10 || c.OutputTokens != nil || c.Requests != nil {
		t.Fatalf("got %+v", r)
	}
	// A vLLM page read as SGLang has none of its counters.
	if _, err := Parse(SGLang, readPage(t, "vllm-1.prom"), ""); err == nil {
		t.Fatal("want an error for a page of another kind")
	}
	if _, err := Parse(VLLM, []byte("not a { page"), ""); err == nil {
		t.Fatal("want an error for a page that is no Prometheus text")
	}
	// A histogram without its TYPE line is read from its _sum series.
	r, err = Parse(TGI, []byte("tgi_request_input_length_sum 12\ntgi_request_generated_tokens_sum 3\n"), "m")
	if err != nil || *r["m"].InputTokens != 12 || *r["m"].OutputTokens != 3 {
		t.Fatalf("untyped histogram sums: %+v, %v", r, err)
	}
	// Values that are no count are skipped.
	r, err = Parse(VLLM, []byte("vllm:prompt_tokens_total{model_name=\"m\"} NaN\nvllm:generation_tokens_total{model_name=\"m\"} -1\n"), "")
	if err != nil || len(r) != 0 {
		t.Fatalf("NaN and negative: %+v, %v", r, err)
	}
}
