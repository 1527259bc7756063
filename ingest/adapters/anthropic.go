package adapters

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/aivis-dev/aivis/schemas"
)

// anthropic normalizes Messages API usage, whose input_tokens excludes
// cache reads and cache writes.
type anthropic struct{}

func (anthropic) Name() string { return "anthropic" }

type anthropicResponse struct {
	Model string          `json:"model"`
	Usage json.RawMessage `json:"usage"`
}

type anthropicUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	CacheCreation            *struct {
		Ephemeral5mInputTokens *int64 `json:"ephemeral_5m_input_tokens"`
		Ephemeral1hInputTokens *int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
	OutputTokens        *int64 `json:"output_tokens"`
	OutputTokensDetails *struct {
		ThinkingTokens *int64 `json:"thinking_tokens"`
	} `json:"output_tokens_details"`
	// ServerToolUse counts billable server-side tool calls, e.g.
	// web_search_requests; every *_requests member is kept.
	ServerToolUse map[string]json.RawMessage `json:"server_tool_use"`
	ServiceTier   string                     `json:"service_tier"`
}

func (anthropic) Normalize(env Envelope) (*schemas.Event, error) {
	b := newBuilder(env, "anthropic", "chat")
	var resp anthropicResponse
	raw, path, err := splitResponse("Anthropic", env.Response, &resp, "usage", &resp.Usage)
	if err != nil {
		return nil, err
	}
	b.setModel(resp.Model)
	var u anthropicUsage
	if raw != nil {
		if err := decodeUsage(path, "Anthropic", raw, &u); err != nil {
			return nil, err
		}
		b.setRaw(raw)
	}
	b.setTier(u.ServiceTier, env.Batch)
	if raw != nil {
		b.anthropicUsage(path, &u)
	}
	return b.finish()
}

func (b *builder) anthropicUsage(path string, u *anthropicUsage) {
	uncached := b.count(path+".input_tokens", u.InputTokens)
	read := b.count(path+".cache_read_input_tokens", u.CacheReadInputTokens)
	write := b.count(path+".cache_creation_input_tokens", u.CacheCreationInputTokens)
	out := b.count(path+".output_tokens", u.OutputTokens)
	var m5, h1 *int64
	split := u.CacheCreation != nil && (u.CacheCreation.Ephemeral5mInputTokens != nil || u.CacheCreation.Ephemeral1hInputTokens != nil)
	if split {
		m5 = b.count(path+".cache_creation.ephemeral_5m_input_tokens", u.CacheCreation.Ephemeral5mInputTokens)
		h1 = b.count(path+".cache_creation.ephemeral_1h_input_tokens", u.CacheCreation.Ephemeral1hInputTokens)
	}
	calls := b.serverToolCalls(path+".server_tool_use", u.ServerToolUse)
	if uncached == nil && read == nil && write == nil && out == nil && !split && calls == nil {
		return
	}
	nu := b.usage()
	nu.CacheReadInputTokens = read
	b.splitCacheWrites(write, m5, h1, split)
	nu.InputTokens = sum(uncached, read, nu.CacheWriteInputTokens)
	nu.OutputTokens = out
	if d := u.OutputTokensDetails; d != nil {
		nu.ReasoningOutputTokens = b.count(path+".output_tokens_details.thinking_tokens", d.ThinkingTokens)
	}
	nu.ServerToolCalls = calls
	b.clampReasoning()
}

// serverToolCalls reads counters named <kind>_requests into {kind: n},
// leaving out zeros and members that are not counts.
func (b *builder) serverToolCalls(path string, m map[string]json.RawMessage) map[string]int64 {
	var calls map[string]int64
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		kind, ok := strings.CutSuffix(k, "_requests")
		if !ok || kind == "" {
			continue
		}
		var n *int64
		if err := json.Unmarshal(m[k], &n); err != nil {
			b.problem(path+"."+k, schemas.CodeInvalidType, "must be an integer count of requests")
			continue
		}
		if n = b.count(path+"."+k, n); n == nil || *n == 0 {
			continue
		}
		if len(calls) == 16 {
			b.warn("server_tool_calls_truncated: more than 16 kinds of server tool call; %s and later kinds dropped", kind)
			break
		}
		if calls == nil {
			calls = make(map[string]int64)
		}
		calls[kind] = *n
	}
	return calls
}
