package adapters

import (
	"encoding/json"

	"github.com/aivis-dev/aivis/schemas"
)

// openAI normalizes Chat Completions and Responses API usage. Both report
// inclusive totals, so cached, reasoning, audio and prediction counts are
// copied as subsets.
type openAI struct{}

func (openAI) Name() string { return "openai" }

type openAIResponse struct {
	Model       string          `json:"model"`
	ServiceTier string          `json:"service_tier"`
	Usage       json.RawMessage `json:"usage"`
}

type openAIUsage struct {
	// Chat Completions.
	PromptTokens            *int64               `json:"prompt_tokens"`
	CompletionTokens        *int64               `json:"completion_tokens"`
	PromptTokensDetails     *openAIInputDetails  `json:"prompt_tokens_details"`
	CompletionTokensDetails *openAIOutputDetails `json:"completion_tokens_details"`
	// Responses API.
	InputTokens         *int64               `json:"input_tokens"`
	OutputTokens        *int64               `json:"output_tokens"`
	InputTokensDetails  *openAIInputDetails  `json:"input_tokens_details"`
	OutputTokensDetails *openAIOutputDetails `json:"output_tokens_details"`

	TotalTokens *int64 `json:"total_tokens"`
}

type openAIInputDetails struct {
	CachedTokens     *int64 `json:"cached_tokens"`
	CacheWriteTokens *int64 `json:"cache_write_tokens"`
	AudioTokens      *int64 `json:"audio_tokens"`
}

type openAIOutputDetails struct {
	ReasoningTokens          *int64 `json:"reasoning_tokens"`
	AudioTokens              *int64 `json:"audio_tokens"`
	AcceptedPredictionTokens *int64 `json:"accepted_prediction_tokens"`
	RejectedPredictionTokens *int64 `json:"rejected_prediction_tokens"`
}

func (openAI) Normalize(env Envelope) (*schemas.Event, error) {
	b := newBuilder(env, "openai", "chat")
	var resp openAIResponse
	raw, path, err := splitResponse("OpenAI", env.Response, &resp, "usage", &resp.Usage)
	if err != nil {
		return nil, err
	}
	b.setModel(resp.Model)
	b.setTier(resp.ServiceTier, env.Batch)
	if raw != nil {
		var u openAIUsage
		if err := decodeUsage(path, "OpenAI", raw, &u); err != nil {
			return nil, err
		}
		b.setRaw(raw)
		b.openAIUsage(path, &u)
	}
	return b.finish()
}

func (b *builder) openAIUsage(path string, u *openAIUsage) {
	in, out := u.PromptTokens, u.CompletionTokens
	inName, outName := "prompt_tokens", "completion_tokens"
	inDetails, outDetails := u.PromptTokensDetails, u.CompletionTokensDetails
	if in == nil && out == nil && (u.InputTokens != nil || u.OutputTokens != nil) {
		in, out = u.InputTokens, u.OutputTokens
		inName, outName = "input_tokens", "output_tokens"
		inDetails, outDetails = u.InputTokensDetails, u.OutputTokensDetails
	}
	total := b.count(path+".total_tokens", u.TotalTokens)
	if in == nil && out == nil && total == nil {
		return
	}
	nu := b.usage()
	nu.InputTokens = b.count(path+"."+inName, in)
	nu.OutputTokens = b.count(path+"."+outName, out)
	if d := inDetails; d != nil {
		p := path + "." + inName + "_details."
		nu.CacheReadInputTokens = b.count(p+"cached_tokens", d.CachedTokens)
		nu.CacheWriteInputTokens = b.count(p+"cache_write_tokens", d.CacheWriteTokens)
		nu.InputAudioTokens = b.count(p+"audio_tokens", d.AudioTokens)
	}
	if d := outDetails; d != nil {
		p := path + "." + outName + "_details."
		nu.ReasoningOutputTokens = b.count(p+"reasoning_tokens", d.ReasoningTokens)
		nu.OutputAudioTokens = b.count(p+"audio_tokens", d.AudioTokens)
		nu.AcceptedPredictionTokens = b.count(p+"accepted_prediction_tokens", d.AcceptedPredictionTokens)
		nu.RejectedPredictionTokens = b.count(p+"rejected_prediction_tokens", d.RejectedPredictionTokens)
	}
	b.clampReasoning()
	b.checkTotal(total)
}
