package adapters

import (
	"encoding/json"
	"fmt"

	"github.com/aivis-dev/aivis/schemas"
)

// gemini normalizes Gemini API and Vertex AI usageMetadata. Tool-use prompt
// tokens and thoughts are reported beside, not inside, the prompt and
// candidate counts, and proto3 JSON leaves zero counts out.
type gemini struct{}

func (gemini) Name() string { return "gemini" }

type geminiResponse struct {
	ModelVersion  string          `json:"modelVersion"`
	UsageMetadata json.RawMessage `json:"usageMetadata"`
}

type geminiUsage struct {
	PromptTokenCount           *int64          `json:"promptTokenCount"`
	CachedContentTokenCount    *int64          `json:"cachedContentTokenCount"`
	CandidatesTokenCount       *int64          `json:"candidatesTokenCount"`
	ToolUsePromptTokenCount    *int64          `json:"toolUsePromptTokenCount"`
	ThoughtsTokenCount         *int64          `json:"thoughtsTokenCount"`
	TotalTokenCount            *int64          `json:"totalTokenCount"`
	PromptTokensDetails        []geminiDetails `json:"promptTokensDetails"`
	ToolUsePromptTokensDetails []geminiDetails `json:"toolUsePromptTokensDetails"`
	CandidatesTokensDetails    []geminiDetails `json:"candidatesTokensDetails"`
	TrafficType                string          `json:"trafficType"`
}

// geminiDetails is one ModalityTokenCount.
type geminiDetails struct {
	Modality   string `json:"modality"`
	TokenCount *int64 `json:"tokenCount"`
}

func (gemini) Normalize(env Envelope) (*schemas.Event, error) {
	b := newBuilder(env, "gcp.gemini", "generate_content")
	var resp geminiResponse
	raw, path, err := splitResponse("Gemini", env.Response, &resp, "usageMetadata", &resp.UsageMetadata)
	if err != nil {
		return nil, err
	}
	b.setModel(resp.ModelVersion)
	var u geminiUsage
	if raw != nil {
		if err := decodeUsage(path, "Gemini", raw, &u); err != nil {
			return nil, err
		}
		b.setRaw(raw)
	}
	b.setTier(u.TrafficType, env.Batch)
	if raw != nil {
		b.geminiUsage(path, &u)
	}
	return b.finish()
}

func (b *builder) geminiUsage(path string, u *geminiUsage) {
	prompt := b.count(path+".promptTokenCount", u.PromptTokenCount)
	cached := b.count(path+".cachedContentTokenCount", u.CachedContentTokenCount)
	candidates := b.count(path+".candidatesTokenCount", u.CandidatesTokenCount)
	tool := b.count(path+".toolUsePromptTokenCount", u.ToolUsePromptTokenCount)
	thoughts := b.count(path+".thoughtsTokenCount", u.ThoughtsTokenCount)
	total := b.count(path+".totalTokenCount", u.TotalTokenCount)
	inAudio := sum(b.modality(path+".promptTokensDetails", u.PromptTokensDetails, "AUDIO"),
		b.modality(path+".toolUsePromptTokensDetails", u.ToolUsePromptTokensDetails, "AUDIO"))
	outAudio := b.modality(path+".candidatesTokensDetails", u.CandidatesTokensDetails, "AUDIO")
	if prompt == nil && cached == nil && candidates == nil && tool == nil && thoughts == nil && total == nil {
		return
	}
	nu := b.usage()
	nu.InputTokens = sum(zeroIfNil(prompt), tool)
	nu.CacheReadInputTokens = cached
	nu.ToolInputTokens = tool
	nu.OutputTokens = sum(zeroIfNil(candidates), thoughts)
	nu.ReasoningOutputTokens = thoughts
	if schemas.Get(inAudio) > schemas.Get(nu.InputTokens) {
		b.warn("modality_exceeds_total: AUDIO prompt details sum to %d, more than the %d input tokens; audio input left unset", *inAudio, schemas.Get(nu.InputTokens))
		inAudio = nil
	}
	if schemas.Get(outAudio) > schemas.Get(nu.OutputTokens) {
		b.warn("modality_exceeds_total: AUDIO candidate details sum to %d, more than the %d output tokens; audio output left unset", *outAudio, schemas.Get(nu.OutputTokens))
		outAudio = nil
	}
	nu.InputAudioTokens = inAudio
	nu.OutputAudioTokens = outAudio
	b.checkTotal(total)
}

// modality sums the token counts of one modality; nil when none is listed.
func (b *builder) modality(path string, ds []geminiDetails, modality string) *int64 {
	var n *int64
	for i, d := range ds {
		if d.Modality != modality {
			continue
		}
		c := b.count(fmt.Sprintf("%s[%d].tokenCount", path, i), zeroIfNil(d.TokenCount))
		n = sum(n, c)
	}
	return n
}
