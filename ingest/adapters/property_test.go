package adapters

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// truth is one request's usage in the normalized convention's parts; each
// adapter's test renders it in its provider's shape.
type truth struct {
	uncached, read, write5m, write1h, tool, audioIn int64
	text, reasoning, audioOut, accepted, rejected   int64
}

func (t truth) write() int64  { return t.write5m + t.write1h }
func (t truth) input() int64  { return t.uncached + t.read + t.write() + t.tool }
func (t truth) output() int64 { return t.text + t.reasoning + t.audioOut + t.accepted + t.rejected }

func randomTruth(r *rand.Rand) truth {
	n := func(max int64) int64 {
		if r.IntN(4) == 0 {
			return 0
		}
		return r.Int64N(max + 1)
	}
	t := truth{uncached: n(300_000), read: n(200_000), write5m: n(50_000), write1h: n(50_000),
		tool: n(10_000), text: n(30_000), reasoning: n(30_000), audioOut: n(5_000),
		accepted: n(2_000), rejected: n(2_000)}
	t.audioIn = r.Int64N(t.uncached + 1)
	return t
}

// render gives, per adapter, the provider response for t and the parts of
// t that the provider can express (the rest is zeroed).
var render = map[string]func(t truth) (any, truth){
	"openai": func(t truth) (any, truth) {
		t.write1h, t.tool = 0, 0
		return map[string]any{"model": "gpt-4o", "usage": map[string]any{
			"prompt_tokens": t.input(), "completion_tokens": t.output(), "total_tokens": t.input() + t.output(),
			"prompt_tokens_details":     map[string]any{"cached_tokens": t.read, "cache_write_tokens": t.write(), "audio_tokens": t.audioIn},
			"completion_tokens_details": map[string]any{"reasoning_tokens": t.reasoning, "audio_tokens": t.audioOut, "accepted_prediction_tokens": t.accepted, "rejected_prediction_tokens": t.rejected},
		}}, t
	},
	"anthropic": func(t truth) (any, truth) {
		t.tool, t.audioIn, t.audioOut, t.accepted, t.rejected = 0, 0, 0, 0, 0
		return map[string]any{"model": "claude-sonnet-4-5", "usage": map[string]any{
			"input_tokens": t.uncached, "cache_read_input_tokens": t.read, "cache_creation_input_tokens": t.write(),
			"cache_creation": map[string]any{"ephemeral_5m_input_tokens": t.write5m, "ephemeral_1h_input_tokens": t.write1h},
			"output_tokens":  t.output(), "output_tokens_details": map[string]any{"thinking_tokens": t.reasoning},
		}}, t
	},
	"gemini": func(t truth) (any, truth) {
		t.write5m, t.write1h, t.audioIn, t.audioOut, t.accepted, t.rejected = 0, 0, 0, 0, 0, 0
		return map[string]any{"modelVersion": "gemini-2.5-pro", "usageMetadata": map[string]any{
			"promptTokenCount": t.uncached + t.read, "cachedContentTokenCount": t.read, "toolUsePromptTokenCount": t.tool,
			"candidatesTokenCount": t.text, "thoughtsTokenCount": t.reasoning, "totalTokenCount": t.input() + t.output(),
		}}, t
	},
	"bedrock": func(t truth) (any, truth) {
		t.tool, t.audioIn, t.reasoning, t.audioOut, t.accepted, t.rejected = 0, 0, 0, 0, 0, 0
		return map[string]any{"usage": map[string]any{
			"inputTokens": t.uncached, "cacheReadInputTokens": t.read, "cacheWriteInputTokens": t.write(),
			"outputTokens": t.output(), "totalTokens": t.input() + t.output(),
			"cacheDetails": []any{map[string]any{"ttl": "1h", "inputTokens": t.write1h}, map[string]any{"ttl": "5m", "inputTokens": t.write5m}},
		}}, t
	},
	"litellm": func(t truth) (any, truth) {
		t.tool, t.audioIn, t.audioOut, t.accepted, t.rejected = 0, 0, 0, 0, 0
		return map[string]any{"id": "req-1", "model": "claude-sonnet-4-5", "custom_llm_provider": "anthropic",
			"prompt_tokens": t.input(), "completion_tokens": t.output(), "total_tokens": t.input() + t.output(), "response_cost": 0.25,
			"usage": map[string]any{"prompt_tokens": t.input(), "completion_tokens": t.output(),
				"cache_read_input_tokens": t.read, "cache_creation_input_tokens": t.write(),
				"prompt_tokens_details":     map[string]any{"cache_creation_token_details": map[string]any{"ephemeral_5m_input_tokens": t.write5m, "ephemeral_1h_input_tokens": t.write1h}},
				"completion_tokens_details": map[string]any{"reasoning_tokens": t.reasoning}},
		}, t
	},
}

func TestRenderCoversEveryAdapter(t *testing.T) {
	for _, name := range Names() {
		if render[name] == nil {
			t.Errorf("adapter %s has no property-test renderer", name)
		}
	}
}

// TestNormalizeProperties checks, for random consistent usage in every
// provider's shape, that the normalized counts add up: input = uncached +
// cache read + cache write (+ tool), every subset within its total, the
// provider total agreeing, and the event valid.
func TestNormalizeProperties(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			a, _ := Lookup(name)
			r := rand.New(rand.NewPCG(42, uint64(len(name))))
			for i := range 500 {
				resp, want := render[name](randomTruth(r))
				raw, err := json.Marshal(resp)
				if err != nil {
					t.Fatal(err)
				}
				env := Envelope{EventID: fmt.Sprintf("prop-%d", i), Time: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC),
					Source: "prop", RequestModel: "m", Response: raw}
				ev, err := a.Normalize(env)
				if err != nil {
					t.Fatalf("case %d %+v: %v", i, want, err)
				}
				if err := ev.Validate(); err != nil {
					t.Fatalf("case %d: normalized event does not validate: %v", i, err)
				}
				checkUsage(t, i, ev.Usage, want)
				for _, w := range ev.Warnings {
					if strings.HasPrefix(w, "provider_total_mismatch") {
						t.Errorf("case %d: consistent usage raised %q", i, w)
					}
				}
			}
		})
	}
}

func checkUsage(t *testing.T, i int, u *schemas.Usage, want truth) {
	t.Helper()
	if u == nil {
		t.Fatalf("case %d: no usage", i)
	}
	g := schemas.Get
	in, out := g(u.InputTokens), g(u.OutputTokens)
	uncached := in - g(u.CacheReadInputTokens) - g(u.CacheWriteInputTokens) - g(u.ToolInputTokens)
	checks := []struct {
		what      string
		got, want int64
	}{
		{"input", in, want.input()},
		{"uncached input", uncached, want.uncached},
		{"cache read", g(u.CacheReadInputTokens), want.read},
		{"cache write", g(u.CacheWriteInputTokens), want.write()},
		{"cache write 1h", g(u.CacheWrite1hInputTokens), want.write1h},
		{"tool input", g(u.ToolInputTokens), want.tool},
		{"output", out, want.output()},
		{"reasoning", g(u.ReasoningOutputTokens), want.reasoning},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("case %d: %s = %d, want %d (truth %+v)", i, c.what, c.got, c.want, want)
		}
	}
	for _, sub := range []*int64{u.CacheReadInputTokens, u.CacheWriteInputTokens, u.ToolInputTokens, u.InputAudioTokens} {
		if g(sub) > in {
			t.Errorf("case %d: an input subset (%d) exceeds input %d", i, g(sub), in)
		}
	}
	for _, sub := range []*int64{u.ReasoningOutputTokens, u.OutputAudioTokens, u.AcceptedPredictionTokens, u.RejectedPredictionTokens} {
		if g(sub) > out {
			t.Errorf("case %d: an output subset (%d) exceeds output %d", i, g(sub), out)
		}
	}
	if g(u.CacheWrite5mInputTokens)+g(u.CacheWrite1hInputTokens) > g(u.CacheWriteInputTokens) {
		t.Errorf("case %d: 5m+1h cache writes exceed the cache-write total", i)
	}
}

func TestPlainDecimal(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"0", "0", ""},
		{"0.0", "0", ""},
		{"12", "12", ""},
		{"0.00123", "0.00123", ""},
		{"1.845e-05", "0.00001845", ""},
		{"1.845E-5", "0.00001845", ""},
		{"2.5e3", "2500", ""},
		{"2.5e+1", "25", ""},
		{"0.0310000", "0.031", ""},
		{"000.5", "0.5", ""},
		{"1e-38", "0.00000000000000000000000000000000000001", ""},
		{"1e-40", "", "digits"},
		{"-0.0", "0", ""},
		{"-1", "", "negative"},
		{"1e-41", "", "exponent"},
		{"1e", "", "exponent"},
		{"1.2.3", "", "not a JSON number"},
		{"abc", "", "not a JSON number"},
		{"1e39", "1000000000000000000000000000000000000000", ""},
		{"1e40", "", "digits"},
		{"123456789012345678901234567890.1234567890123", "", "digits"},
	}
	for _, tt := range tests {
		got, err := plainDecimal(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("plainDecimal(%q) error = %v, want one containing %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("plainDecimal(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestLookup(t *testing.T) {
	want := []string{"anthropic", "bedrock", "gemini", "litellm", "openai"}
	if got := Names(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	for _, n := range want {
		if a, ok := Lookup(n); !ok || a.Name() != n {
			t.Errorf("Lookup(%q) = %v, %v", n, a, ok)
		}
	}
	if _, ok := Lookup("nope"); ok {
		t.Error("Lookup(nope) found an adapter")
	}
}

func TestDecodeEnvelopeRejectsUnknownFields(t *testing.T) {
	_, err := DecodeEnvelope([]byte(`{"event_id":"a","time":"2026-01-01T00:00:00Z","source":"s","reponse":{}}`))
	if err == nil || !strings.Contains(err.Error(), "reponse") {
		t.Errorf("DecodeEnvelope with a misspelt field: err = %v, want it named", err)
	}
	if _, err := DecodeEnvelope([]byte(`{"source":"s"} {}`)); err == nil {
		t.Error("DecodeEnvelope accepted two objects")
	}
}

// An envelope that does not decode says which kind of problem it has,
// whatever else is wrong with it.
func TestDecodeEnvelopeCodes(t *testing.T) {
	for _, tt := range []struct{ data, want string }{
		{`{"event_id":"a","reponse":{}}`, schemas.CodeUnknownField},
		{`{"reponse":{},"event_id":7}`, schemas.CodeUnknownField},
		{`{"event_id":7,"reponse":{}}`, schemas.CodeInvalidType},
		{`{"labels":{"team":1}}`, schemas.CodeInvalidType},
		{`{"time":"yesterday"}`, schemas.CodeInvalidValue},
		{`{"reponse":{},"time":"yesterday"}`, schemas.CodeInvalidValue},
		{`{"event_id":`, schemas.CodeInvalidValue},
		{`{"source":"s"} {}`, schemas.CodeInvalidValue},
		{``, schemas.CodeInvalidValue},
	} {
		_, err := DecodeEnvelope([]byte(tt.data))
		var eerr *EnvelopeError
		if !errors.As(err, &eerr) || eerr.Code != tt.want {
			t.Errorf("DecodeEnvelope(%s) = %v, want an *EnvelopeError with code %s", tt.data, err, tt.want)
		}
	}
}
