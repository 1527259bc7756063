package adapters

import (
	"encoding/json"
	"fmt"

	"github.com/aivis-dev/aivis/schemas"
)

// bedrock normalizes Converse / ConverseStream usage. inputTokens excludes
// cache reads and writes; the response names no model, so the envelope's
// request_model (model id or inference profile) is used.
type bedrock struct{}

func (bedrock) Name() string { return "bedrock" }

type bedrockResponse struct {
	Usage   json.RawMessage `json:"usage"`
	Metrics *struct {
		LatencyMs *int64 `json:"latencyMs"`
	} `json:"metrics"`
}

type bedrockUsage struct {
	InputTokens           *int64 `json:"inputTokens"`
	OutputTokens          *int64 `json:"outputTokens"`
	TotalTokens           *int64 `json:"totalTokens"`
	CacheReadInputTokens  *int64 `json:"cacheReadInputTokens"`
	CacheWriteInputTokens *int64 `json:"cacheWriteInputTokens"`
	CacheDetails          []struct {
		TTL         string `json:"ttl"`
		InputTokens *int64 `json:"inputTokens"`
	} `json:"cacheDetails"`
}

func (bedrock) Normalize(env Envelope) (*schemas.Event, error) {
	b := newBuilder(env, "aws.bedrock", "chat")
	var resp bedrockResponse
	raw, path, err := splitResponse("Bedrock Converse", env.Response, &resp, "usage", &resp.Usage)
	if err != nil {
		return nil, err
	}
	b.setTier("", env.Batch)
	if b.ev.LatencyMs == nil && resp.Metrics != nil && resp.Metrics.LatencyMs != nil && *resp.Metrics.LatencyMs >= 0 {
		b.ev.LatencyMs = resp.Metrics.LatencyMs
	}
	if raw != nil {
		var u bedrockUsage
		if err := decodeUsage(path, "Bedrock Converse", raw, &u); err != nil {
			return nil, err
		}
		b.setRaw(raw)
		b.bedrockUsage(path, &u)
	}
	return b.finish()
}

func (b *builder) bedrockUsage(path string, u *bedrockUsage) {
	uncached := b.count(path+".inputTokens", u.InputTokens)
	read := b.count(path+".cacheReadInputTokens", u.CacheReadInputTokens)
	write := b.count(path+".cacheWriteInputTokens", u.CacheWriteInputTokens)
	out := b.count(path+".outputTokens", u.OutputTokens)
	total := b.count(path+".totalTokens", u.TotalTokens)
	var m5, h1 *int64
	split := len(u.CacheDetails) > 0
	for i, d := range u.CacheDetails {
		field := fmt.Sprintf("%s.cacheDetails[%d]", path, i)
		n := b.count(field+".inputTokens", d.InputTokens)
		if n == nil {
			continue
		}
		switch d.TTL {
		case "5m":
			m5 = sum(m5, n)
		case "1h":
			h1 = sum(h1, n)
		default:
			b.warn("cache_write_unknown_ttl: %s has ttl %q; its %d tokens are counted as 5m", field, d.TTL, *n)
			m5 = sum(m5, n)
		}
	}
	if uncached == nil && read == nil && write == nil && out == nil && !split && total == nil {
		return
	}
	nu := b.usage()
	nu.CacheReadInputTokens = read
	b.splitCacheWrites(write, m5, h1, split)
	nu.InputTokens = sum(uncached, read, nu.CacheWriteInputTokens)
	nu.OutputTokens = out
	b.checkTotal(total)
}
