package adapters

import (
	"bytes"
	"encoding/json"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// liteLLM normalizes a LiteLLM StandardLoggingPayload (what its logging
// callbacks send) or a LiteLLM_SpendLogs row. LiteLLM reports usage in the
// OpenAI shape, prompt_tokens including cache reads and writes, and its own
// cost of the request, which is kept as provider_cost_usd.
type liteLLM struct{}

func (liteLLM) Name() string { return "litellm" }

type liteLLMPayload struct {
	ID                string          `json:"id"`
	RequestID         string          `json:"request_id"`
	CallType          string          `json:"call_type"`
	Model             string          `json:"model"`
	ModelGroup        string          `json:"model_group"`
	CustomLLMProvider string          `json:"custom_llm_provider"`
	Status            string          `json:"status"`
	Stream            *bool           `json:"stream"`
	PromptTokens      *int64          `json:"prompt_tokens"`
	CompletionTokens  *int64          `json:"completion_tokens"`
	TotalTokens       *int64          `json:"total_tokens"`
	ResponseCost      json.RawMessage `json:"response_cost"`
	Spend             json.RawMessage `json:"spend"`
	CostFailure       json.RawMessage `json:"response_cost_failure_debug_info"`
	CacheHit          json.RawMessage `json:"cache_hit"`
	StartTime         json.RawMessage `json:"startTime"`
	EndTime           json.RawMessage `json:"endTime"`
	APIKey            string          `json:"api_key"`
	User              string          `json:"user"`
	TeamID            string          `json:"team_id"`
	EndUser           string          `json:"end_user"`
	RequestTags       []string        `json:"request_tags"`
	APIBase           string          `json:"api_base"`
	Messages          json.RawMessage `json:"messages"`
	Response          json.RawMessage `json:"response"`
	Usage             json.RawMessage `json:"usage"`
	Metadata          *struct {
		UserAPIKeyHash      string          `json:"user_api_key_hash"`
		UserAPIKeyAlias     string          `json:"user_api_key_alias"`
		UserAPIKeyTeamID    string          `json:"user_api_key_team_id"`
		UserAPIKeyTeamAlias string          `json:"user_api_key_team_alias"`
		UserAPIKeyUserID    string          `json:"user_api_key_user_id"`
		UserAPIKeyOrgID     string          `json:"user_api_key_org_id"`
		UsageObject         json.RawMessage `json:"usage_object"`
	} `json:"metadata"`
	HiddenParams *struct {
		UsageObject json.RawMessage `json:"usage_object"`
	} `json:"hidden_params"`
	ErrorInformation *struct {
		ErrorClass string `json:"error_class"`
	} `json:"error_information"`
}

// liteLLMUsage is LiteLLM's Usage object: OpenAI's, plus Anthropic-style
// cache counters.
type liteLLMUsage struct {
	PromptTokens        *int64 `json:"prompt_tokens"`
	CompletionTokens    *int64 `json:"completion_tokens"`
	TotalTokens         *int64 `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens             *int64 `json:"cached_tokens"`
		CacheCreationTokens      *int64 `json:"cache_creation_tokens"`
		AudioTokens              *int64 `json:"audio_tokens"`
		CacheCreationTokenDetail *struct {
			Ephemeral5mInputTokens *int64 `json:"ephemeral_5m_input_tokens"`
			Ephemeral1hInputTokens *int64 `json:"ephemeral_1h_input_tokens"`
		} `json:"cache_creation_token_details"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails  *openAIOutputDetails `json:"completion_tokens_details"`
	CacheCreationInputTokens *int64               `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int64               `json:"cache_read_input_tokens"`
}

func (liteLLM) Normalize(env Envelope) (*schemas.Event, error) {
	var p liteLLMPayload
	if _, _, err := splitResponse("LiteLLM logging payload", env.Response, &p, "usage", &p.Usage); err != nil {
		return nil, err
	}
	b := newBuilder(env, "", liteLLMOperation(p.CallType))
	e := b.ev
	if e.EventID == "" {
		e.EventID = firstNonEmpty(p.ID, p.RequestID)
	}
	if e.Provider == "" {
		e.Provider = liteLLMProvider(p.CustomLLMProvider)
		if e.Provider == "" {
			b.problem("provider", schemas.CodeRequired, "is required: the payload has no custom_llm_provider, so set provider in the envelope")
		}
	}
	b.setModel(firstNonEmpty(p.Model, p.ModelGroup))
	b.setTier("", env.Batch)
	start, okStart := b.liteLLMTime("response.startTime", p.StartTime)
	end, okEnd := b.liteLLMTime("response.endTime", p.EndTime)
	if e.Time.IsZero() && okStart {
		e.Time = start
	}
	if e.LatencyMs == nil && okStart && okEnd && !end.Before(start) {
		e.LatencyMs = schemas.Int64(end.Sub(start).Milliseconds())
	}
	if e.Status == "" {
		switch p.Status {
		case "success":
			e.Status = schemas.StatusOK
		case "failure":
			e.Status = schemas.StatusError
		}
	}
	if e.ErrorType == "" && p.ErrorInformation != nil {
		e.ErrorType = p.ErrorInformation.ErrorClass
	}
	if p.Stream != nil && *p.Stream {
		e.Streaming = true
	}
	if md := p.Metadata; md != nil {
		if e.APIKeyID == "" {
			// LiteLLM's hash is not of the APIKeyID form; hashed again,
			// it names the key as steadily and reveals no more.
			e.APIKeyID = schemas.HashKey(md.UserAPIKeyHash)
		}
		b.label("team", md.UserAPIKeyTeamAlias)
		b.label("litellm_team_id", md.UserAPIKeyTeamID)
		b.label("litellm_key_alias", md.UserAPIKeyAlias)
		b.label("litellm_user_id", md.UserAPIKeyUserID)
		b.label("litellm_org_id", md.UserAPIKeyOrgID)
	}
	if e.APIKeyID == "" {
		// api_key may be LiteLLM's hash of the key or the key itself.
		e.APIKeyID = schemas.HashKey(p.APIKey)
	}
	b.label("litellm_team_id", p.TeamID)
	b.label("litellm_user_id", p.User)
	if e.EndUser == "" {
		e.EndUser = p.EndUser
	}
	if len(e.Tags) == 0 && len(p.RequestTags) > 0 {
		e.Tags = p.RequestTags
	}
	if e.ProviderEndpoint == "" {
		e.ProviderEndpoint = hostOf(p.APIBase)
		if e.ProviderRegion == "" {
			e.ProviderRegion = schemas.RegionOfEndpoint(p.APIBase)
		}
	}
	// The payload carries the request's messages and the provider's
	// response when LiteLLM logs them; their sizes are the data moved.
	if e.RequestBytes == nil && isPresent(p.Messages) {
		e.RequestBytes = schemas.Int64(int64(len(p.Messages)))
	}
	if e.ResponseBytes == nil && isPresent(p.Response) {
		e.ResponseBytes = schemas.Int64(int64(len(p.Response)))
	}

	usageRaw, usagePath := p.Usage, "response.usage"
	if len(bytes.TrimSpace(usageRaw)) == 0 || bytes.Equal(bytes.TrimSpace(usageRaw), []byte("null")) {
		usageRaw, usagePath = nil, ""
		switch {
		case p.Metadata != nil && isObject(p.Metadata.UsageObject):
			usageRaw, usagePath = p.Metadata.UsageObject, "response.metadata.usage_object"
		case p.HiddenParams != nil && isObject(p.HiddenParams.UsageObject):
			usageRaw, usagePath = p.HiddenParams.UsageObject, "response.hidden_params.usage_object"
		}
	}
	var u liteLLMUsage
	if usageRaw != nil {
		if err := decodeUsage(usagePath, "LiteLLM", usageRaw, &u); err != nil {
			return nil, err
		}
		b.setRaw(usageRaw)
	}
	// The payload's own counts are what LiteLLM billed; the usage object
	// fills in what they leave out.
	prompt := b.count("response.prompt_tokens", p.PromptTokens)
	if prompt == nil {
		prompt = b.count(usagePath+".prompt_tokens", u.PromptTokens)
	}
	completion := b.count("response.completion_tokens", p.CompletionTokens)
	if completion == nil {
		completion = b.count(usagePath+".completion_tokens", u.CompletionTokens)
	}
	total := b.count("response.total_tokens", p.TotalTokens)
	if total == nil {
		total = b.count(usagePath+".total_tokens", u.TotalTokens)
	}
	if usageRaw == nil && (prompt != nil || completion != nil || total != nil) {
		b.setRaw(liteLLMRawCounts(p))
	}
	b.liteLLMUsage(usagePath, &u, prompt, completion, total)
	b.liteLLMCost(&p)
	return b.finish()
}

func (b *builder) liteLLMUsage(path string, u *liteLLMUsage, prompt, completion, total *int64) {
	read := b.count(path+".cache_read_input_tokens", u.CacheReadInputTokens)
	write := b.count(path+".cache_creation_input_tokens", u.CacheCreationInputTokens)
	var audio, m5, h1 *int64
	split := false
	if d := u.PromptTokensDetails; d != nil {
		if read == nil {
			read = b.count(path+".prompt_tokens_details.cached_tokens", d.CachedTokens)
		}
		if write == nil {
			write = b.count(path+".prompt_tokens_details.cache_creation_tokens", d.CacheCreationTokens)
		}
		audio = b.count(path+".prompt_tokens_details.audio_tokens", d.AudioTokens)
		if s := d.CacheCreationTokenDetail; s != nil && (s.Ephemeral5mInputTokens != nil || s.Ephemeral1hInputTokens != nil) {
			split = true
			m5 = b.count(path+".prompt_tokens_details.cache_creation_token_details.ephemeral_5m_input_tokens", s.Ephemeral5mInputTokens)
			h1 = b.count(path+".prompt_tokens_details.cache_creation_token_details.ephemeral_1h_input_tokens", s.Ephemeral1hInputTokens)
		}
	}
	if prompt == nil && completion == nil && total == nil && read == nil && write == nil {
		return
	}
	nu := b.usage()
	nu.CacheReadInputTokens = read
	if write != nil || split {
		b.splitCacheWrites(write, m5, h1, split)
	}
	nu.InputTokens = prompt
	if cached := schemas.Get(read) + schemas.Get(nu.CacheWriteInputTokens); cached > schemas.Get(prompt) {
		// Some LiteLLM versions passed Anthropic's exclusive input count
		// through unchanged.
		b.warn("litellm_prompt_tokens_exclusive: prompt_tokens %d is less than the cache reads and writes (%d); input counted as prompt_tokens + cache tokens", schemas.Get(prompt), cached)
		nu.InputTokens = sum(prompt, read, nu.CacheWriteInputTokens)
	}
	nu.OutputTokens = completion
	if audio != nil && *audio <= schemas.Get(nu.InputTokens) {
		nu.InputAudioTokens = audio
	}
	if d := u.CompletionTokensDetails; d != nil {
		p := path + ".completion_tokens_details."
		nu.ReasoningOutputTokens = b.count(p+"reasoning_tokens", d.ReasoningTokens)
		nu.OutputAudioTokens = b.count(p+"audio_tokens", d.AudioTokens)
		nu.AcceptedPredictionTokens = b.count(p+"accepted_prediction_tokens", d.AcceptedPredictionTokens)
		nu.RejectedPredictionTokens = b.count(p+"rejected_prediction_tokens", d.RejectedPredictionTokens)
	}
	b.clampReasoning()
	b.checkTotal(total)
}

// liteLLMCost keeps LiteLLM's cost, unless LiteLLM says it could not price
// the request or reports 0 for tokens it did not serve from its own cache
// (a known spend-logging failure), in which case the catalog prices it.
func (b *builder) liteLLMCost(p *liteLLMPayload) {
	field, raw := "response.response_cost", p.ResponseCost
	if len(raw) == 0 || string(raw) == "null" {
		field, raw = "response.spend", p.Spend
	}
	if len(raw) == 0 || string(raw) == "null" {
		return
	}
	if len(p.CostFailure) > 0 && string(p.CostFailure) != "null" {
		b.warn("litellm_cost_failed: LiteLLM could not price the request (response_cost_failure_debug_info is set); its cost is ignored")
		return
	}
	text := string(raw)
	if strings.HasPrefix(text, `"`) {
		if err := json.Unmarshal(raw, &text); err != nil {
			b.problem(field, schemas.CodeInvalidType, "must be a number of USD")
			return
		}
	} else if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		b.problem(field, schemas.CodeInvalidType, "must be a number of USD, got %s", jsonKindOf(raw))
		return
	}
	cost, err := plainDecimal(text)
	if err != nil {
		b.problem(field, schemas.CodeInvalidValue, "reading LiteLLM's cost: %v", err)
		return
	}
	if cost == "0" && !isTrue(p.CacheHit) && b.ev.Usage != nil && schemas.Get(b.ev.Usage.InputTokens)+schemas.Get(b.ev.Usage.OutputTokens) > 0 {
		b.warn("litellm_zero_cost_ignored: LiteLLM reports cost 0 for %d tokens that were not a cache hit; the catalog prices them", schemas.Get(b.ev.Usage.InputTokens)+schemas.Get(b.ev.Usage.OutputTokens))
		return
	}
	b.ev.ProviderCostUSD = cost
}

// liteLLMTime reads a LiteLLM timestamp: epoch seconds (callbacks) or a
// date-time string (spend logs, UTC when it names no zone).
func (b *builder) liteLLMTime(field string, raw json.RawMessage) (time.Time, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, false
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			b.problem(field, schemas.CodeInvalidValue, "must be epoch seconds or an RFC 3339 timestamp")
			return time.Time{}, false
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), true
			}
		}
		b.problem(field, schemas.CodeInvalidValue, "%q is not a timestamp; send epoch seconds or RFC 3339", s)
		return time.Time{}, false
	}
	secs, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(secs) || secs < 0 || secs > 1e11 {
		b.problem(field, schemas.CodeInvalidValue, "must be epoch seconds between 0 and 1e11 or an RFC 3339 timestamp, got %s", raw)
		return time.Time{}, false
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(math.Round(frac*1e6))*1e3).UTC(), true
}

// label sets a label the envelope did not set itself.
func (b *builder) label(key, value string) {
	if value == "" {
		return
	}
	if _, ok := b.ev.Labels[key]; ok {
		return
	}
	if b.ev.Labels == nil {
		b.ev.Labels = make(map[string]string)
	}
	b.ev.Labels[key] = value
}

// liteLLMRawCounts rebuilds the payload's usage members for audit when it
// carries no usage object.
func liteLLMRawCounts(p liteLLMPayload) json.RawMessage {
	m := map[string]any{}
	put := func(k string, v *int64) {
		if v != nil {
			m[k] = *v
		}
	}
	put("prompt_tokens", p.PromptTokens)
	put("completion_tokens", p.CompletionTokens)
	put("total_tokens", p.TotalTokens)
	if len(p.ResponseCost) > 0 {
		m["response_cost"] = p.ResponseCost
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	return raw
}

// liteLLMProvider maps custom_llm_provider onto aivis provider names.
func liteLLMProvider(p string) string {
	switch p = strings.ToLower(strings.TrimSpace(p)); p {
	case "gemini", "vertex_ai", "vertex_ai_beta":
		return "gcp.gemini"
	case "bedrock", "bedrock_converse":
		return "aws.bedrock"
	case "azure", "azure_ai":
		return "azure.ai.openai"
	case "text-completion-openai":
		return "openai"
	default:
		return p
	}
}

// liteLLMOperation maps call_type onto an operation name.
func liteLLMOperation(callType string) string {
	switch callType {
	case "", "completion", "acompletion", "responses", "aresponses", "anthropic_messages":
		return "chat"
	case "embedding", "aembedding":
		return "embeddings"
	case "text_completion", "atext_completion":
		return "text_completion"
	default:
		return callType
	}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

func isTrue(raw json.RawMessage) bool {
	s := strings.Trim(string(bytes.TrimSpace(raw)), `"`)
	return strings.EqualFold(s, "true")
}

func jsonKindOf(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	default:
		return "a JSON value"
	}
}

// isPresent reports whether raw holds a value other than null or "".
func isPresent(raw json.RawMessage) bool {
	v := bytes.TrimSpace(raw)
	return len(v) > 0 && !bytes.Equal(v, []byte("null")) && !bytes.Equal(v, []byte(`""`))
}

// hostOf returns the host of an endpoint URL (or the endpoint itself when
// it has no scheme), without port and path.
func hostOf(endpoint string) string {
	host := endpoint
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	if i := strings.IndexAny(host, "/?#"); i >= 0 {
		host = host[:i]
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if len(host) > 256 {
		return ""
	}
	return host
}
