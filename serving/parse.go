package serving

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Counters are one model's cumulative counts on one page. A counter whose
// metric is not on the page is nil, distinct from 0.
type Counters struct {
	InputTokens  *float64
	OutputTokens *float64
	Requests     *float64
}

// Reading is a page read into counters by model.
type Reading map[string]Counters

// Models returns the models in name order.
func (r Reading) Models() []string {
	out := make([]string, 0, len(r))
	for m := range r {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// metricNames say where a kind keeps its counters. Each list holds
// alternatives, first match wins: the name as documented, then the spelling
// another exporter version or a missing TYPE line gives it (a histogram
// read without its TYPE line is an untyped family named …_sum).
type metricNames struct {
	modelLabel string // "" when the page carries no model name
	input      []string
	output     []string
	requests   []string
}

var names = map[Kind]metricNames{
	// vLLM: docs.vllm.ai "Production Metrics"; the counters carry
	// model_name (and, in the V1 engine, engine per data-parallel rank).
	VLLM: {
		modelLabel: "model_name",
		input:      []string{"vllm:prompt_tokens_total", "vllm:prompt_tokens"},
		output:     []string{"vllm:generation_tokens_total", "vllm:generation_tokens"},
		requests:   []string{"vllm:request_success_total", "vllm:request_success"},
	},
	// TGI: the router's metrics (docs "Metrics"); histograms of tokens per
	// request, whose _sum is the running total. No model label.
	TGI: {
		input:    []string{"tgi_request_input_length", "tgi_request_input_length_sum"},
		output:   []string{"tgi_request_generated_tokens", "tgi_request_generated_tokens_sum"},
		requests: []string{"tgi_request_count", "tgi_request_count_total"},
	},
	// SGLang: docs.sglang.io "Production Metrics" (--enable-metrics).
	SGLang: {
		modelLabel: "model_name",
		input:      []string{"sglang:prompt_tokens_total", "sglang:prompt_tokens"},
		output:     []string{"sglang:generation_tokens_total", "sglang:generation_tokens"},
		requests:   []string{"sglang:num_requests_total", "sglang:num_requests"},
	},
	// Triton with the TensorRT-LLM backend: nv_llm_input_token_len and
	// nv_llm_output_token_len histograms (label response_metric_type);
	// requests from Triton's own nv_inference_request_success.
	Triton: {
		modelLabel: "model",
		input:      []string{"nv_llm_input_token_len", "nv_llm_input_token_len_sum"},
		output:     []string{"nv_llm_output_token_len", "nv_llm_output_token_len_sum"},
		requests:   []string{"nv_inference_request_success"},
	},
}

// ErrNoTokenCounters says that a page holds none of the kind's token
// counters.
var ErrNoTokenCounters = errors.New("the page has none of the token counters of this kind")

// Parse reads a Prometheus text page of a server of the given kind. Models
// come from the kind's model label, or are all model when model is set
// (their counts summed). Only models with a token counter are kept: Triton
// lists its ensemble and pre/post-processing models too, whose requests
// would otherwise be counted several times.
func Parse(kind Kind, page []byte, modelOverride string) (Reading, error) {
	spec, ok := names[kind]
	if !ok {
		return nil, fmt.Errorf("unknown serving kind %q (want one of %v)", kind, Kinds)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(page))
	if err != nil {
		return nil, fmt.Errorf("parsing the Prometheus text page: %w", err)
	}
	raw := map[string]*Counters{}
	add := func(field func(*Counters) **float64, candidates []string) bool {
		fam := pick(fams, candidates)
		if fam == nil {
			return false
		}
		for _, m := range fam.GetMetric() {
			v, ok := value(m)
			if !ok {
				continue
			}
			name := ""
			if spec.modelLabel != "" {
				name = labelValue(m, spec.modelLabel)
			}
			c := raw[name]
			if c == nil {
				c = &Counters{}
				raw[name] = c
			}
			f := field(c)
			if *f == nil {
				*f = new(float64)
			}
			**f += v
		}
		return true
	}
	hasIn := add(func(c *Counters) **float64 { return &c.InputTokens }, spec.input)
	hasOut := add(func(c *Counters) **float64 { return &c.OutputTokens }, spec.output)
	if !hasIn && !hasOut {
		return nil, fmt.Errorf("%w (looked for %s and %s): check the target's kind, and that the server exports metrics (vLLM and TGI do by default, SGLang needs --enable-metrics, Triton needs the TensorRT-LLM backend)",
			ErrNoTokenCounters, spec.input[0], spec.output[0])
	}
	add(func(c *Counters) **float64 { return &c.Requests }, spec.requests)

	out := Reading{}
	for name, c := range raw {
		if c.InputTokens == nil && c.OutputTokens == nil {
			continue
		}
		if modelOverride != "" {
			name = modelOverride
		}
		if name == "" {
			name = "unknown"
		}
		prev, seen := out[name]
		if !seen {
			out[name] = *c
			continue
		}
		out[name] = Counters{InputTokens: sum(prev.InputTokens, c.InputTokens), OutputTokens: sum(prev.OutputTokens, c.OutputTokens), Requests: sum(prev.Requests, c.Requests)}
	}
	return out, nil
}

func pick(fams map[string]*dto.MetricFamily, candidates []string) *dto.MetricFamily {
	for _, n := range candidates {
		if f, ok := fams[n]; ok && len(f.GetMetric()) > 0 {
			return f
		}
	}
	return nil
}

// value reads a series as a running total: a counter's or untyped value,
// or a histogram's or summary's sum. Values that are no count (negative,
// NaN, infinite) are skipped.
func value(m *dto.Metric) (float64, bool) {
	var v float64
	switch {
	case m.Counter != nil:
		v = m.Counter.GetValue()
	case m.Untyped != nil:
		v = m.Untyped.GetValue()
	case m.Histogram != nil:
		v = m.Histogram.GetSampleSum()
	case m.Summary != nil:
		v = m.Summary.GetSampleSum()
	default:
		return 0, false
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, false
	}
	return v, true
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func sum(a, b *float64) *float64 {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	v := *a + *b
	return &v
}
